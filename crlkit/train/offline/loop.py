"""The offline loop: the shared CRL learner on a fixed dataset, evaluated with OGBench's protocol.

```
load dataset -> resolve per-dataset defaults -> RunDir (config.json, resume) -> loop:
    chunk = jitted while_loop of n x (sample minibatch -> learner.update)      (one compile)
    log means of the chunk's metrics; evaluate (5 tasks x episodes) every eval_every; checkpoint
```
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
from crlkit.runs.progress import Progress
from crlkit.runs.rundir import RunDir, default_out_dir
from crlkit.train import parallel
from crlkit.train.hostloop import (
    Clock,
    NonFiniteLoss,
    device_name,
    due,
    next_boundary,
    param_count,
    progress_disabled,
    wall_estimate,
)
from crlkit.train.offline.chunks import Carry, Trainer
from crlkit.train.offline.config import (
    OfflineConfig,
    eval_target,
    parse_goal_indices,
    resolve,
)
from crlkit.train.offline.evaluators import Evaluator, make_evaluator
from crlkit.train.offline.sampling import choose_sampler, dataset_arrays


def run(
    cfg: OfflineConfig,
    lcfg: LearnerConfig,
    *,
    resume: bool = False,
    progress: bool = True,
    echo: Callable[[str], Any] | None = None,
) -> dict[str, Any]:
    """`crlkit offline`: load the dataset, resolve defaults, build the evaluator, train.

    Raises DatasetError/ValueError/RunDirError with one-line messages for bad input, and
    `NonFiniteLoss` when training diverges (after checkpointing the last finite state).
    """
    if not cfg.dataset:
        raise ValueError("--dataset is required (see: crlkit datasets)")
    if resume and not cfg.out:
        raise ValueError("--resume needs --out: the run directory to continue")
    ds = load_dataset(
        cfg.dataset, data_dir=cfg.data_dir or None, echo=echo,
        goal_indices=parse_goal_indices(cfg.goal_indices), env=cfg.env or None,
    )  # fmt: skip
    cfg, lcfg = resolve(cfg, lcfg, ds)
    if cfg.goal_space == "observation":  # psi and the actor see whole goal observations (OGBench)
        ds = dataclasses.replace(ds, goal_indices=tuple(range(ds.obs_dim)))
    evaluator = make_evaluator(cfg, ds, echo or (lambda _: None))
    return train(cfg, lcfg, ds, evaluator, resume=resume, progress=progress, echo=echo)



def default_out(lcfg: LearnerConfig, ds: Dataset) -> Path:
    """runs/<dataset>-d<critic depth>-<time>."""
    return default_out_dir(Path(ds.name).name, lcfg.network.critic_depth)


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
    progress: bool | None = True,
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
      progress: progress bar (None: only on a terminal).
      echo: called with one-line notes (run dir, sampler, resume).
    """
    echo = echo or (lambda _: None)
    nets = learner.make_networks(lcfg, dims_of(ds))
    out = Path(cfg.out) if cfg.out else default_out(lcfg, ds)
    cfg = dataclasses.replace(cfg, out=str(out))
    config = {"offline": cfg, "learner": lcfg, "dataset": _dataset_info(cfg, ds)}
    run = RunDir.create(
        out, config, resume=resume, ignore_on_resume=RESUMABLE_FIELDS,
        keep_checkpoints=cfg.keep_checkpoints,
        checkpoint_format="orbax" if jax.device_count() > 1 else "npz",
    )  # fmt: skip
    with run:
        data = dataset_arrays(ds)
        trainer = Trainer(nets, lcfg, cfg, data, choose_sampler(cfg, data))
        loop = _Loop(cfg, nets, run, trainer, evaluator, progress)
        carry = loop.start(dims_of(ds), lcfg, resume, echo)
        echo(f"run dir {out}; {ds.num_transitions:,} transitions; sampler {trainer.sampler}")
        carry = loop.train(carry)
        if loop.nonfinite_step >= 0:
            path = loop.checkpoint(carry)
            run.write_summary(loop.summary(carry, ds, stopped="non_finite"))
            raise NonFiniteLoss(
                f"non-finite loss or parameters at SGD step {loop.nonfinite_step}; stopped and "
                f"saved the last finite state to {path}"
            )
        summary = loop.summary(carry, ds)
        run.write_summary(summary)
    return summary


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


class _Loop:
    """The host side of one run: chunks, logging, evaluation, checkpoints, the summary."""

    def __init__(self, cfg, nets, run: RunDir, trainer: Trainer, evaluator, progress):
        self.cfg, self.nets, self.rundir, self.trainer = cfg, nets, run, trainer
        self.evaluator, self.progress = evaluator, progress
        self.ckpt_every = cfg.checkpoint_every or cfg.eval_every
        self.clock = Clock()
        self.step = 0
        self.last_eval: dict[str, float] = {}
        self.nonfinite_step = -1  # the first non-finite SGD step, once training hit one
        self.echo: Callable[[str], Any] = lambda _: None

    def start(self, dims, lcfg: LearnerConfig, resume: bool, echo) -> Carry:
        """Fresh learner state, or the newest checkpoint's when resuming."""
        if self.rundir.primary:
            self.echo = echo
        fresh = initial_carry(self.nets, lcfg, dims, self.cfg.seed, self.cfg.steps)
        restored = self.rundir.restore(self.trainer.abstract(fresh)) if resume else None
        if restored is None:
            return self.trainer.place(fresh)
        carry, self.step, meta = restored
        self.clock = Clock.from_meta(meta)
        echo(f"resumed {self.rundir.path} at SGD step {self.step:,}")
        return carry

    def train(self, carry: Carry) -> Carry:
        """Chunks of SGD steps up to cfg.steps, with log/eval/checkpoint events between them."""
        t_start, wall0 = time.perf_counter(), self.clock.wall
        self.echo(f"compiling the training chunk on {jax.device_count()} device(s) ...")
        seconds = self.trainer.compile(carry)
        self.clock.compile += seconds
        self.echo(f"compiled in {seconds:.1f} s")
        cfg = self.cfg
        disable = progress_disabled(self.progress) if self.rundir.primary else True
        with Progress(
            cfg.steps, unit="SGD steps", initial=self.step, disable=disable
        ) as bar:
            while self.step < cfg.steps:
                end = next_boundary(
                    self.step, cfg.steps, cfg.log_every, cfg.eval_every, self.ckpt_every
                )
                t0 = time.perf_counter()
                carry, means, bad = self.trainer.run(carry, self.step, end - self.step)
                jax.block_until_ready(carry)
                seconds = time.perf_counter() - t0
                self.clock.train += seconds
                event = {names.TRAIN + k: v for k, v in means.items()}
                if bad >= 0:  # the carry holds the last finite state (SGD step bad - 1)
                    end = bad - 1
                event[names.SGD_STEPS_PER_S] = (end - self.step) / max(seconds, 1e-9)
                if self.clock.train == seconds:  # the run's first chunk: is it a long one?
                    left = (cfg.steps - end) / max(end - self.step, 1) * seconds
                    self._echo_estimate(left, time.perf_counter() - t_start)
                self.step = end
                bar.update(end)
                if bad >= 0:
                    self.rundir.log(end, event)
                    self.clock.wall = wall0 + time.perf_counter() - t_start
                    self.nonfinite_step = bad
                    return carry
                if due(cfg.eval_every, end) or end == cfg.steps:
                    event.update(self.evaluate(carry))
                    if names.SUCCESS in event:
                        bar.set_eval(success=event[names.SUCCESS])
                if due(cfg.log_every, end) or names.SUCCESS in event or end == cfg.steps:
                    self.rundir.log(end, event)
                self.clock.wall = wall0 + time.perf_counter() - t_start
                if due(self.ckpt_every, end) or end == cfg.steps:
                    self.checkpoint(carry)
        if not self.last_eval:  # resumed a finished run: evaluate what it holds
            self.evaluate(carry)
        self.clock.wall = wall0 + time.perf_counter() - t_start
        return carry

    def _echo_estimate(self, remaining_s: float, elapsed_s: float) -> None:
        line = wall_estimate(remaining_s, elapsed_s)
        if line:
            self.echo(line)

    def evaluate(self, carry: Carry) -> dict[str, float]:
        """OGBench's task evaluation of the deterministic actor, as `eval/...` metrics (process 0
        only: the others return {})."""
        if not self.rundir.primary:
            return {}
        t0 = time.perf_counter()
        self.echo(f"evaluating at SGD step {self.step:,} ...")
        key = eval_key(self.cfg.seed, self.step)
        params = carry.learner.actor.params
        if self.trainer.mesh is not None:  # evaluated on this process's first device
            params = parallel.local_copy(params)
        metrics = self.evaluator(self.nets, params, key)
        out = names.prefixed(names.EVAL, metrics)
        out[names.EVAL_SECONDS] = time.perf_counter() - t0
        result = f"success {out[names.SUCCESS]:.2f}" if names.SUCCESS in out else "no evaluation"
        self.echo(f"evaluated in {out[names.EVAL_SECONDS]:.1f} s: {result}")
        self.last_eval = out
        return out

    def checkpoint(self, carry: Carry) -> Path:
        meta = {"sgd_steps": self.step, **self.clock.meta()}
        return self.rundir.save_checkpoint(carry, self.step, meta)

    def summary(self, carry: Carry, ds: Dataset, stopped: str = "budget") -> dict[str, Any]:
        """summary.json: why it stopped, final evaluation, steps, seconds, throughput, sampler."""
        train_s = max(self.clock.train, 1e-9)
        return {
            "dataset": ds.name,
            "run_dir": str(self.rundir.path),
            "stopped": stopped,
            "sgd_steps": int(carry.learner.step),
            **self.clock.summary(),
            "sgd_steps_per_s": int(carry.learner.step) / train_s,
            "sampler": self.trainer.sampler,
            "device": device_name(),
            **parallel.topology(),
            "params": param_count(carry.learner),
            **self.last_eval,
        }


def _dataset_info(cfg: OfflineConfig, ds: Dataset) -> dict[str, Any]:
    try:  # where the policy is evaluated: ('crlkit' | 'ogbench' | 'minari', name)
        target = list(eval_target(cfg, ds))
    except ValueError:  # no env to evaluate in: the evaluator says so, in one line
        target = None
    return {
        "eval_env": target,
        "name": ds.name,
        "path": str(ds.metadata.get("path", "")),
        "transitions": ds.num_transitions,
        "episodes": ds.num_episodes,
        "obs_dim": ds.obs_dim,
        "action_dim": ds.action_dim,
        "goal_indices": list(ds.goal_indices),
    }
