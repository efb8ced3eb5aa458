"""The offline loop: the shared CRL learner on a fixed dataset, evaluated with OGBench's protocol.

```
load dataset -> resolve per-dataset defaults -> RunDir (config.json, resume) -> loop:
    chunk = jitted while_loop of n x (sample minibatch -> learner.update)      (one compile)
    log means of the chunk's metrics; evaluate (5 tasks x episodes) every eval_every; checkpoint
```
`OfflineChunk` is that chunk as the one host loop (crlkit/train/hostloop.py) drives it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax

from crlkit import learner
from crlkit import metric_names as names
from crlkit.config import LearnerConfig
from crlkit.data.catalog import load_dataset
from crlkit.data.dataset import Dataset
from crlkit.data.plan import check_fits, parse_goal_indices, plan_dataset
from crlkit.runs.checkpoint import Restored
from crlkit.runs.rundir import RunDir, default_out_dir
from crlkit.runs.sinks import TrackingConfig
from crlkit.train import parallel
from crlkit.train.evaluate import Evaluator
from crlkit.train.hostloop import Events, HostLoop
from crlkit.train.offline.chunks import Carry, Trainer
from crlkit.train.offline.config import OfflineConfig, apply_plan, choose_preset
from crlkit.train.offline.evaluators import make_evaluator
from crlkit.train.offline.sampling import choose_sampler, dataset_arrays


def run(
    cfg: OfflineConfig,
    lcfg: LearnerConfig,
    *,
    resume: bool = False,
    start_over: bool = False,
    progress: bool = True,
    tracking: TrackingConfig | None = None,
    echo: Callable[[str], Any] | None = None,
) -> dict[str, Any]:
    """`crlkit offline`: load the dataset, resolve defaults, build the evaluator, train.

    Raises DatasetError/ValueError/RunDirError with one-line messages for bad input, and
    `RunStopped` when training diverges (`NonFiniteLoss`) or a stop signal arrives (after
    checkpointing).
    """
    if resume and cfg.out is None:
        raise ValueError("--resume needs --out: the run directory to continue")
    cfg, lcfg, ds, evaluator = prepare(cfg, lcfg, echo)
    return train(
        cfg,
        lcfg,
        ds,
        evaluator,
        resume=resume,
        start_over=start_over,
        progress=progress,
        tracking=tracking,
        echo=echo,
    )


def prepare(
    cfg: OfflineConfig, lcfg: LearnerConfig, echo: Callable[[str], Any] | None = None
) -> tuple[OfflineConfig, LearnerConfig, Dataset, Evaluator]:
    """Load the dataset, apply its plan to the configs, build the evaluator (used by `run` and
    by `crlkit eval`, so a saved run is evaluated in the env and on the data it trained with)."""
    cfg = choose_preset(cfg)
    choices = cfg.dataset_choices()
    goal_indices = parse_goal_indices(cfg.goal_indices)
    ds = load_dataset(
        cfg.dataset, data_dir=cfg.data_dir, echo=echo, goal_indices=goal_indices, env=cfg.env
    )
    plan = plan_dataset(ds, **choices)  # the one place a dataset's meaning is decided
    check_fits(ds, plan)
    cfg, lcfg = apply_plan(cfg, lcfg, plan)
    # psi and the actor see the plan's goal columns; config.json records the plan verbatim.
    metadata = {**ds.metadata, "plan": plan.to_dict()}
    ds = dataclasses.replace(ds, goal_indices=plan.goal_indices, metadata=metadata)
    evaluator = make_evaluator(cfg, ds, plan, echo or (lambda _: None))
    return cfg, lcfg, ds, evaluator


def default_out(cfg: OfflineConfig, lcfg: LearnerConfig, ds: Dataset) -> Path:
    """runs/<dataset>-d<critic depth>-s<seed>-<time>."""
    return default_out_dir(Path(ds.name).name, lcfg.network.critic_depth, cfg.seed)


def dims_of(ds: Dataset) -> learner.Dims:
    """Network input sizes from the dataset (observation = env state)."""
    return learner.Dims(state_dim=ds.obs_dim, goal_dim=ds.goal_dim, action_dim=ds.action_dim)


def train(
    cfg: OfflineConfig,
    lcfg: LearnerConfig,
    ds: Dataset,
    evaluator: Evaluator,
    *,
    resume: bool = False,
    start_over: bool = False,
    progress: bool | None = True,
    tracking: TrackingConfig | None = None,
    echo: Callable[[str], Any] | None = None,
) -> dict[str, Any]:
    """Train on `ds` with resolved configs (see `resolve`); returns the summary (also summary.json).

    Args:
      cfg, lcfg: resolved configs (`resolve(cfg, lcfg, ds)`).
      ds: the dataset.
      evaluator: evaluator(nets, actor_params, key) -> metrics with at least `success`
        (see `make_evaluator`).
      resume: continue the run in cfg.out from its newest checkpoint; the stored config must
        equal this one except `--steps`.
      start_over: with `resume`, start again from step 0 when every checkpoint is unreadable.
      progress: progress bar (None: only on a terminal).
      tracking: optional TensorBoard / W&B sinks, with the run's name, tags and group there.
      echo: called with one-line notes (run dir, sampler, resume).
    """
    echo = echo or (lambda _: None)
    nets = learner.make_networks(lcfg, dims_of(ds))
    out = Path(cfg.out) if cfg.out else default_out(cfg, lcfg, ds)
    cfg = dataclasses.replace(cfg, out=str(out))
    config = {"offline": cfg, "learner": lcfg, "dataset": _dataset_info(cfg, ds)}
    run = RunDir.create(
        out,
        config,
        resume=resume,
        ignore_on_resume=RESUMABLE_FIELDS,
        keep_checkpoints=cfg.keep_checkpoints,
        tracking=tracking,
    )
    with run:
        data = dataset_arrays(ds)
        trainer = Trainer(nets, lcfg, cfg, data, choose_sampler(cfg, data))
        chunk = OfflineChunk(cfg, lcfg, nets, dims_of(ds), ds.name, trainer, evaluator)
        events = Events(cfg.log_every, cfg.eval_every, cfg.checkpoint_every or cfg.eval_every)
        loop = HostLoop(
            chunk,
            run,
            events,
            progress=progress,
            echo=echo,
            resume=resume,
            start_over=start_over,
        )
        if run.primary:
            echo(f"run dir {out}; {ds.num_transitions:,} transitions; sampler {trainer.sampler}")
        return loop.train()


# `out` is where the run lives, not how it trains: a moved or re-spelled path still resumes.
# dataset.eval_env is derived (recorded for `crlkit render`; runs made before it lack it).
RESUMABLE_FIELDS = ("offline.steps", "offline.out", "dataset.eval_env")


def initial_carry(
    nets: learner.Networks, lcfg: LearnerConfig, dims, seed: int, num_updates: int | None = None
) -> Carry:
    """The run's starting point: fresh learner state and sampling key from `seed` (`num_updates`:
    the SGD steps the run plans, the learning-rate schedule's horizon)."""
    init_key, sample_key = jax.random.split(jax.random.PRNGKey(seed))
    return Carry(learner=learner.init(nets, lcfg, dims, init_key, num_updates), key=sample_key)


def eval_key(seed: int, step: int) -> jax.Array:
    """The evaluation key at `step`: depends only on (seed, step), so reruns and resumed runs
    evaluate alike."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(seed), 1), step)


def evaluate_actor(
    evaluator: Evaluator, nets: learner.Networks, params, seed: int, done: int
) -> dict[str, float]:
    """The offline evaluation of actor `params` after `done` SGD steps, as `eval/...` metrics."""
    return names.prefixed(names.EVAL, evaluator(nets, params, eval_key(seed, done)))


class OfflineChunk:
    """The offline regime for the host loop: loop steps are SGD steps."""

    unit = "SGD steps"
    evaluate_at_start = False

    def __init__(
        self,
        cfg: OfflineConfig,
        lcfg: LearnerConfig,
        nets,
        dims,
        dataset: str,
        trainer: Trainer,
        evaluator: Evaluator,
    ):
        self.cfg, self.lcfg, self.nets, self.dims = cfg, lcfg, nets, dims
        self.dataset, self.trainer, self.evaluator = dataset, trainer, evaluator
        self.total = cfg.steps

    # -- state --------------------------------------------------------------------------------

    def _fresh(self) -> Carry:
        return initial_carry(self.nets, self.lcfg, self.dims, self.cfg.seed, self.cfg.steps)

    def init(self) -> Carry:
        return self.trainer.place(self._fresh())

    def template(self) -> tuple[Carry, None]:
        shapes = jax.eval_shape(self._fresh)
        return self.trainer.abstract(shapes), None

    def restored(self, found: Restored) -> Carry:
        return found.tree

    def done(self, carry: Carry) -> int:
        return int(carry.learner.step)

    def logged(self, done: int) -> int:
        return done

    # -- compiled chunk -----------------------------------------------------------------------

    def compile(self, carry: Carry) -> None:
        self.trainer.compile(carry)

    def run(self, carry: Carry, done: int, n: int) -> tuple[Carry, dict, int]:
        return self.trainer.run(carry, done, n)

    def metrics(self, stats: dict, steps: int, seconds: float, carry) -> dict[str, float]:
        """Means of the kept updates' metrics, and the SGD steps per second."""
        count = max(float(stats["count"]), 1.0)
        out = {names.TRAIN + k: float(v) / count for k, v in stats["sums"].items()}
        out[names.SGD_STEPS_PER_S] = steps / max(seconds, 1e-9)
        return out

    # -- events -------------------------------------------------------------------------------

    def evaluate(self, carry: Carry, done: int) -> dict[str, float]:
        """OGBench's task evaluation of the deterministic actor, as `eval/...` metrics."""
        t0 = time.perf_counter()
        params = carry.learner.actor.params
        if self.trainer.mesh is not None:  # evaluated on this process's first device
            params = parallel.local_copy(params)
        out = evaluate_actor(self.evaluator, self.nets, params, self.cfg.seed, done)
        out[names.EVAL_SECONDS] = time.perf_counter() - t0
        return out

    def checkpoint(self, carry: Carry) -> tuple[Carry, None, dict]:
        return carry, None, {"sgd_steps": int(carry.learner.step)}

    def summary(self, carry: Carry, train_seconds: float) -> dict[str, Any]:
        """summary.json's offline part: dataset, steps, throughput, sampler."""
        sgd = int(carry.learner.step)
        return {
            "dataset": self.dataset,
            "sgd_steps": sgd,
            "sgd_steps_per_s": sgd / train_seconds,
            "sampler": self.trainer.sampler,
        }


def _dataset_info(cfg: OfflineConfig, ds: Dataset) -> dict[str, Any]:
    plan = ds.metadata.get("plan") or plan_dataset(ds, **cfg.dataset_choices()).to_dict()
    return {
        "plan": plan,
        "eval_env": plan["eval_target"],  # where the policy is evaluated
        "name": ds.name,
        "path": str(ds.metadata.get("path", "")),
        "transitions": ds.num_transitions,
        "episodes": ds.num_episodes,
        "obs_dim": ds.obs_dim,
        "action_dim": ds.action_dim,
        "goal_indices": list(ds.goal_indices),
    }
