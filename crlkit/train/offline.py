"""The offline loop: the shared CRL learner on a fixed dataset, evaluated with OGBench's protocol.

```
load dataset -> resolve per-dataset defaults -> RunDir (config.json, resume) -> loop:
    chunk = jitted fori_loop of n x (sample minibatch -> learner.update)       (one compile)
    log means of the chunk's metrics; evaluate (5 tasks x episodes) every eval_every; checkpoint
```

Minibatches are sampled on device from the whole dataset when it fits (`sampler="device"`), or
drawn on the host with the NumPy twins of the same goal samplers and fed to the same jitted update
in blocks (`sampler="host"`). Chunk lengths are traced loop bounds, so chunks that end at an
evaluation, a checkpoint or the last step never trigger a recompilation.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from crlkit import learner
from crlkit.config import LearnerConfig, option_field
from crlkit.data import goals
from crlkit.data.catalog import VERSIONED_NAMES
from crlkit.data.dataset import Dataset
from crlkit.envs.backends import BACKEND_CHOICES
from crlkit.train import rundir

SAMPLERS = ("auto", "device", "host")
# Full-size datasets get OGBench's budget; the shipped samples a quick one (a few CPU minutes).
OGBENCH_STEPS = 1_000_000
SAMPLE_STEPS = 2_000
# OGBench's CRL actor (DDPG+BC) weights by dataset family; `explore` data uses its own.
FAMILY_ALPHA = {
    "pointmaze": 0.03,
    "antmaze": 0.1,
    "humanoidmaze": 0.1,
    "antsoccer": 0.3,
    "cube": 3.0,
    "scene": 3.0,
    "puzzle": 3.0,
}
EXPLORE_ALPHA = 0.003
DEFAULT_ALPHA = 0.1
# Uniform random goals mixed into the actor's goals on stitch/explore data (OGBench).
STITCH_ACTOR_P_RANDOM = 0.5
HOST_BLOCK = 64  # minibatches sampled on the host per device transfer


@dataclasses.dataclass(frozen=True)
class OfflineConfig:
    """Settings of `crlkit offline` besides the learner's. Zero/negative sentinels mean 'auto'."""

    dataset: str = option_field(
        "", "Dataset: a catalog name (antmaze-large), an .npz path, a Minari dir or minari:<id>."
    )
    data_dir: str = option_field("", "OGBench cache directory (default ~/.ogbench/data).")
    env: str = option_field(
        "", "Env to evaluate in: a crlkit env or an OGBench env id (default: the dataset's env)."
    )
    backend: str = option_field(
        "auto", "Physics backend of the evaluation env (crlkit envs).", BACKEND_CHOICES
    )
    steps: int = option_field(
        0,
        f"SGD steps; 0: {OGBENCH_STEPS:,} (OGBench's budget), or {SAMPLE_STEPS:,} for the shipped "
        f"sample datasets (a few CPU minutes).",
    )
    batch_size: int = option_field(1024, "Minibatch size (OGBench: 1024).")
    discount: float = option_field(
        0.0,
        "Geometric goal-offset discount of the critic's goals; 0: 0.995 for giant mazes and "
        "humanoidmaze, else 0.99 (OGBench).",
    )
    alpha: float = option_field(
        -1.0,
        "Behaviour-cloning weight of the ddpg_bc actor loss; negative: OGBench's per-family value "
        "(pointmaze 0.03, antmaze 0.1, humanoidmaze 0.1, antsoccer 0.3, cube/scene/puzzle 3.0, "
        "explore data 0.003, other 0.1).",
    )
    critic_p_current: float = option_field(
        0.0, "Share of critic goals that are the sampled state itself."
    )
    critic_p_random: float = option_field(
        0.0, "Share of critic goals drawn uniformly from the dataset."
    )
    critic_geometric: bool = option_field(
        True, "Critic trajectory goals at a geometric offset (else uniform over the future)."
    )
    actor_p_current: float = option_field(
        0.0, "Share of actor goals that are the sampled state itself."
    )
    actor_p_random: float = option_field(
        -1.0,
        "Share of actor goals drawn uniformly from the dataset; negative: 0.5 on stitch and "
        "explore data, else 0 (OGBench).",
    )
    actor_geometric: bool = option_field(
        False, "Actor trajectory goals at a geometric offset (else uniform over the future)."
    )
    at_episode_end: str = option_field(
        "clip",
        "Geometric offsets past the episode end: clip (OGBench) or renormalize.",
        goals.AT_EPISODE_END,
    )
    sampler: str = option_field(
        "auto",
        "Where minibatches are drawn: device (dataset on the accelerator), host (NumPy), or auto "
        "(device when the dataset fits in --device-data-gb).",
        SAMPLERS,
    )
    device_data_gb: float = option_field(
        4.0, "auto sampler: largest dataset (GB) put on the device."
    )
    log_every: int = option_field(
        500, "SGD steps between log events (metrics.jsonl, progress bar)."
    )
    eval_every: int = option_field(
        100_000, "SGD steps between evaluations (always one at the end); 0: only at the end."
    )
    eval_episodes: int = option_field(50, "Evaluation episodes per OGBench task (5 tasks); >= 1.")
    checkpoint_every: int = option_field(
        0, "SGD steps between checkpoints (always one at the end); 0: at every evaluation."
    )
    keep_checkpoints: int = option_field(3, "Newest checkpoints kept in the run dir.")
    seed: int = option_field(0, "Seed of the networks, minibatch sampling and evaluation.")
    out: str = option_field("", "Run directory (default runs/<dataset>-d<depth>-<time>).")

    def __post_init__(self) -> None:
        positive = ("batch_size", "log_every", "eval_episodes", "keep_checkpoints")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{_flag(name)} must be an integer >= 1, got {value!r}")
        for name in ("steps", "eval_every", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{_flag(name)} must be >= 0, got {getattr(self, name)!r}")
        if not (self.discount == 0.0 or 0.0 < self.discount < 1.0):
            raise ValueError(f"--discount must lie in (0, 1) (or 0 for auto), got {self.discount}")
        if self.backend not in BACKEND_CHOICES:
            valid = ", ".join(BACKEND_CHOICES)
            raise ValueError(f"unknown backend {self.backend!r}; valid: {valid}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; valid: {', '.join(SAMPLERS)}")
        if self.at_episode_end not in goals.AT_EPISODE_END:
            valid = ", ".join(goals.AT_EPISODE_END)
            raise ValueError(f"unknown at_episode_end {self.at_episode_end!r}; valid: {valid}")
        if self.device_data_gb < 0:
            raise ValueError(f"--device-data-gb must be >= 0, got {self.device_data_gb}")

    def critic_goals(self) -> goals.GoalMix:
        """The critic's goal mixture."""
        return _mix(self.critic_p_current, self.critic_p_random, self.critic_geometric, "critic")

    def actor_goals(self) -> goals.GoalMix:
        """The actor's goal mixture (call on a resolved config)."""
        return _mix(self.actor_p_current, self.actor_p_random, self.actor_geometric, "actor")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _mix(p_current: float, p_random: float, geometric: bool, who: str) -> goals.GoalMix:
    try:
        return goals.GoalMix(p_current, 1.0 - p_current - p_random, p_random, geometric)
    except ValueError:
        raise ValueError(
            f"--{who}-p-current {p_current} and --{who}-p-random {p_random} must be >= 0 and sum "
            f"to at most 1"
        ) from None


# ---------------------------------------------------------------------------------------------
# Per-dataset defaults


def dataset_family(ds: Dataset) -> tuple[str, str]:
    """(family, data type) of a dataset from its env/name: ('antmaze', 'navigate') and the like."""
    name = str(ds.metadata.get("env") or ds.name).lower()
    family = Path(name).name.split("-")[0]
    full = ds.name.lower()
    kind = next((k for k in ("stitch", "explore") if f"-{k}" in full), "navigate")
    return family, str(ds.metadata.get("dataset_type") or ds.metadata.get("style") or kind)


def resolve(
    cfg: OfflineConfig, lcfg: LearnerConfig, ds: Dataset
) -> tuple[OfflineConfig, LearnerConfig]:
    """Fill the 'auto' settings for this dataset (OGBench's defaults); returns concrete configs."""
    family, kind = dataset_family(ds)
    giant = "giant" in ds.name.lower() or "giant" in str(ds.metadata.get("env", ""))
    steps = cfg.steps or (SAMPLE_STEPS if ds.metadata.get("source") == "sample" else OGBENCH_STEPS)
    discount = cfg.discount or (0.995 if giant or family == "humanoidmaze" else 0.99)
    alpha = cfg.alpha
    if alpha < 0:
        alpha = EXPLORE_ALPHA if kind == "explore" else FAMILY_ALPHA.get(family, DEFAULT_ALPHA)
    p_random = cfg.actor_p_random
    if p_random < 0:
        p_random = STITCH_ACTOR_P_RANDOM if kind in ("stitch", "explore") else 0.0
    cfg = dataclasses.replace(
        cfg, steps=steps, discount=discount, alpha=alpha, actor_p_random=p_random
    )
    cfg.critic_goals(), cfg.actor_goals()  # validate the mixtures now, with one-line errors
    return cfg, dataclasses.replace(lcfg, bc_alpha=float(alpha))


# ---------------------------------------------------------------------------------------------
# Data on device and minibatch sampling


@flax.struct.dataclass
class DeviceData:
    """The arrays minibatches are gathered from (on device, or on the host for `sampler=host`)."""

    observations: Any  # [N, S]
    actions: Any  # [N, A]
    goals: Any  # [N, G]
    episode_ends: Any  # [N] final row (inclusive) of each row's episode
    valid_rows: Any  # [M] rows that start a transition


@flax.struct.dataclass
class Carry:
    """What a training chunk changes and a checkpoint stores: the learner state and sampling key."""

    learner: learner.CRLState
    key: jax.Array


def dataset_arrays(ds: Dataset) -> DeviceData:
    """The dataset's sampling arrays as NumPy (float32 observations, int32 indices)."""
    return DeviceData(
        observations=np.asarray(ds.observations, np.float32),
        actions=np.asarray(ds.actions, np.float32),
        goals=np.asarray(ds.goals(), np.float32),
        episode_ends=np.asarray(ds.episode_ends, np.int32),
        valid_rows=np.flatnonzero(ds.valids > 0).astype(np.int32),
    )


def data_nbytes(data: DeviceData) -> int:
    """Bytes the sampling arrays take."""
    return sum(int(np.asarray(x).nbytes) for x in jax.tree.leaves(data))


def choose_sampler(cfg: OfflineConfig, data: DeviceData) -> str:
    """'device' or 'host': auto puts the dataset on device when it is under --device-data-gb."""
    if cfg.sampler != "auto":
        return cfg.sampler
    return "device" if data_nbytes(data) <= cfg.device_data_gb * 1e9 else "host"


def gather_batch(data: DeviceData, rows: goals.OfflineRows) -> learner.Batch:
    """Minibatch arrays for sampled rows (works on jax and NumPy arrays alike)."""
    return learner.Batch(
        state=data.observations[rows.rows],
        action=data.actions[rows.rows],
        goal=data.goals[rows.critic_goal_rows],
        actor_goal=data.goals[rows.actor_goal_rows],
    )


def sample_batch(cfg: OfflineConfig, data: DeviceData, key: jax.Array) -> learner.Batch:
    """One minibatch drawn on device (OGBench-style critic and actor goals)."""
    rows = goals.sample_offline_rows(
        key, data.valid_rows, data.episode_ends, cfg.batch_size,
        cfg.critic_goals(), cfg.actor_goals(), cfg.discount,
    )  # fmt: skip
    return gather_batch(data, rows)


def sample_host_block(
    cfg: OfflineConfig, data: DeviceData, rng: np.random.Generator, count: int
) -> learner.Batch:
    """`count` minibatches drawn on the host, stacked: leaves [count, batch, ...]."""
    rows = goals.sample_offline_rows_np(
        rng, data.valid_rows, data.episode_ends, count * cfg.batch_size,
        cfg.critic_goals(), cfg.actor_goals(), cfg.discount,
    )  # fmt: skip
    batch = gather_batch(data, rows)
    return jax.tree.map(lambda x: x.reshape(count, cfg.batch_size, *x.shape[1:]), batch)


# ---------------------------------------------------------------------------------------------
# Jitted training chunks


def _zero_metrics(nets, lcfg: LearnerConfig, state: learner.CRLState, batch: learner.Batch):
    shapes = jax.eval_shape(lambda s, b: learner.update(nets, lcfg, s, b)[1], state, batch)
    return jax.tree.map(lambda s: jnp.zeros(s.shape, jnp.float32), shapes)


def _sgd_loop(nets, lcfg: LearnerConfig, carry: Carry, n: jax.Array, next_batch, example):
    """Up to n (batch -> update) steps, stopping after the first non-finite one.

    next_batch(i, carry) -> (batch, carry). Returns (carry, summed metrics, accepted updates,
    first non-finite SGD step or -1); a non-finite update is discarded (see update_if_finite).
    """

    def cond(acc):
        i, _, _, _, bad = acc
        return (i < n) & (bad < 0)

    def body(acc):
        i, carry, sums, count, bad = acc
        batch, carry = next_batch(i, carry)
        state, bad, metrics, ok = learner.update_if_finite(nets, lcfg, carry.learner, batch, bad)
        sums = jax.tree.map(jnp.add, sums, metrics)
        return i + 1, carry.replace(learner=state), sums, count + ok, bad

    zeros = _zero_metrics(nets, lcfg, carry.learner, example)
    init = (jnp.int32(0), carry, zeros, jnp.float32(0.0), jnp.int32(-1))
    _, carry, sums, count, bad = jax.lax.while_loop(cond, body, init)
    return carry, sums, count, bad


def make_device_chunk(
    nets: learner.Networks, lcfg: LearnerConfig, cfg: OfflineConfig
) -> Callable[[Carry, DeviceData, jax.Array], tuple[Carry, dict, jax.Array, jax.Array]]:
    """jit(carry, data, n) -> (carry, summed metrics, accepted, bad): n x (sample -> update)."""

    def chunk(carry: Carry, data: DeviceData, n: jax.Array):
        def next_batch(_, carry):
            key, sample_key = jax.random.split(carry.key)
            return sample_batch(cfg, data, sample_key), carry.replace(key=key)

        example = jax.eval_shape(lambda d, k: sample_batch(cfg, d, k), data, carry.key)
        return _sgd_loop(nets, lcfg, carry, n, next_batch, example)

    return jax.jit(chunk, donate_argnums=(0,))


def make_host_chunk(
    nets: learner.Networks, lcfg: LearnerConfig
) -> Callable[[Carry, learner.Batch, jax.Array], tuple[Carry, dict, jax.Array, jax.Array]]:
    """jit(carry, batches [H, B, ...], n <= H) -> (carry, summed metrics, accepted, bad): the
    first n batches."""

    def chunk(carry: Carry, batches: learner.Batch, n: jax.Array):
        def next_batch(i, carry):
            return jax.tree.map(lambda x: x[i], batches), carry

        example = jax.tree.map(lambda x: x[0], batches)
        return _sgd_loop(nets, lcfg, carry, n, next_batch, example)

    return jax.jit(chunk, donate_argnums=(0,))


class Trainer:
    """Runs chunks of SGD steps with the chosen sampler: compiled once, for any chunk length."""

    def __init__(
        self, nets, lcfg: LearnerConfig, cfg: OfflineConfig, data: DeviceData, sampler: str
    ):
        self.cfg = cfg
        self.sampler = sampler
        self.data = jax.device_put(data) if sampler == "device" else data
        self._jitted = (
            make_device_chunk(nets, lcfg, cfg)
            if sampler == "device"
            else make_host_chunk(nets, lcfg)
        )
        self.compiled: Any = None

    def compile(self, carry: Carry) -> float:
        """Compile the chunk ahead of time (a traced chunk length: no later recompilation)."""
        t0 = time.perf_counter()
        if self.sampler == "device":
            source = self.data
        else:
            block = (HOST_BLOCK, self.cfg.batch_size)
            example = sample_host_block(self.cfg, self.data, np.random.default_rng(0), 1)
            source = jax.tree.map(
                lambda x: jax.ShapeDtypeStruct(block + x.shape[2:], x.dtype), example
            )
        self.compiled = self._jitted.lower(carry, source, jnp.int32(0)).compile()
        return time.perf_counter() - t0

    def run(self, carry: Carry, start_step: int, n: int) -> tuple[Carry, dict[str, float], int]:
        """Up to n SGD steps from `start_step`.

        Returns the new carry, the mean metrics of the kept updates and the first non-finite SGD
        step (-1 when all were finite; training stops there, keeping the last finite state).
        """
        if self.compiled is None:
            self.compile(carry)
        if self.sampler == "device":
            carry, sums, count, bad = self.compiled(carry, self.data, jnp.int32(n))
            return carry, _means(sums, float(count)), int(bad)
        totals: dict[str, float] = {}
        done, kept, bad = 0, 0.0, -1
        while done < n and bad < 0:
            # Host draws depend only on (seed, step): a resumed run samples what the first would.
            rng = np.random.default_rng([self.cfg.seed, start_step + done])
            count = min(HOST_BLOCK, n - done)
            block = sample_host_block(self.cfg, self.data, rng, HOST_BLOCK)
            carry, sums, ok, bad = self.compiled(carry, jax.device_put(block), jnp.int32(count))
            bad = int(bad)
            for k, v in sums.items():
                totals[k] = totals.get(k, 0.0) + float(v)
            done, kept = done + count, kept + float(ok)
        return carry, _means(totals, kept), bad


def _means(sums: dict, count: float) -> dict[str, float]:
    return {k: float(v) / max(count, 1.0) for k, v in sums.items()}


# ---------------------------------------------------------------------------------------------
# Evaluation: crlkit's env when it has OGBench parity, else OGBench's gymnasium env

Evaluator = Callable[[learner.Networks, Any, jax.Array], dict[str, float]]


def eval_target(cfg: OfflineConfig, ds: Dataset) -> tuple[str, str]:
    """('crlkit', env name) or ('ogbench', gymnasium env id) to evaluate `ds`'s policy in."""
    from crlkit.envs.registry import REGISTRY, canonical_name

    name = cfg.env or str(ds.metadata.get("env") or "")
    if name:
        try:
            canon = canonical_name(name)
        except ValueError:
            canon = None
        if canon is not None and REGISTRY[canon].ogbench_env_id and REGISTRY[canon].maze:
            return "crlkit", canon
        if canon is not None:
            raise ValueError(f"env {canon!r} has no OGBench evaluation tasks; pass --env")
        if cfg.env and not VERSIONED_NAMES.fullmatch(cfg.env):
            canonical_name(cfg.env)  # raises: unknown env, did you mean ...
    env_id = cfg.env or str(ds.metadata.get("ogbench_env_id") or "") or ogbench_env_id(ds.name)
    if not env_id:
        raise ValueError(
            f"dataset {ds.name!r} names no env to evaluate in; pass --env (a crlkit env from "
            f"`crlkit envs` or an OGBench env id such as cube-single-v0)"
        )
    same = [n for n, e in REGISTRY.items() if e.ogbench_env_id == env_id and e.maze]
    return ("crlkit", same[0]) if same else ("ogbench", env_id)


def ogbench_env_id(dataset_name: str) -> str:
    """OGBench's env id for one of its dataset names (the data-type word removed), else ''."""
    parts = Path(dataset_name).name.removesuffix(".npz").split("-")
    if len(parts) < 3 or not re.fullmatch(r"v\d+", parts[-1]):
        return ""
    return "-".join(parts[:-2] + parts[-1:])


def make_evaluator(cfg: OfflineConfig, ds: Dataset) -> Evaluator:
    """evaluator(nets, actor_params, key) -> OGBench task metrics, in the env matching `ds`.

    Raises DatasetError/ValueError (one line) when the env's sizes do not match the dataset's.
    """
    from crlkit.data.dataset import check_env
    from crlkit.train import evaluate

    kind, name = eval_target(cfg, ds)
    if kind == "crlkit":
        from crlkit.envs import make

        env = make(name, cfg.backend)
        check_env(ds, env.spec)
        return lambda nets, params, key: evaluate.evaluate_tasks(
            env, evaluate.actor_policy(nets, params), key, cfg.eval_episodes
        )
    return _gym_evaluator(cfg, ds, name)


def _gym_evaluator(cfg: OfflineConfig, ds: Dataset, env_id: str) -> Evaluator:
    from crlkit.data.dataset import DatasetError
    from crlkit.train import evaluate, evaluate_gym

    envs = [evaluate_gym.make_gym_env(env_id)]
    obs_dim, action_dim, num_tasks = evaluate_gym.env_sizes(envs[0])
    for what, got, want in (
        ("observation", ds.obs_dim, obs_dim),
        ("action", ds.action_dim, action_dim),
    ):
        if got != want:
            raise DatasetError(
                ds.metadata.get("path", ds.name),
                f"{what} size {got} does not match env {env_id!r} ({what} size {want})",
            )
    if num_tasks == 0:
        raise ValueError(f"OGBench env {env_id!r} has no fixed evaluation tasks")
    envs += [evaluate_gym.make_gym_env(env_id) for _ in range(cfg.eval_episodes - 1)]

    def evaluator(nets, params, key):
        policy = evaluate.actor_policy(nets, params)
        seed = int(jax.random.randint(key, (), 0, 2**31 - 1))
        act = lambda s, g: np.asarray(_batched_policy(policy, s, g))
        return evaluate_gym.evaluate_gym_tasks(envs, act, ds.goal_indices, seed)

    return evaluator


@jax.jit
def _batched_policy(policy, states: jax.Array, goal: jax.Array) -> jax.Array:
    return jax.vmap(policy)(states, goal)


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
    `rundir.NonFiniteLoss` when training diverges (after checkpointing the last finite state).
    """
    from crlkit.data.dataset import load_dataset

    if not cfg.dataset:
        raise ValueError("--dataset is required (see: crlkit datasets)")
    if resume and not cfg.out:
        raise ValueError("--resume needs --out: the run directory to continue")
    ds = load_dataset(cfg.dataset, data_dir=cfg.data_dir or None, echo=echo)
    cfg, lcfg = resolve(cfg, lcfg, ds)
    evaluator = make_evaluator(cfg, ds)
    return train(cfg, lcfg, ds, evaluator, resume=resume, progress=progress, echo=echo)


# ---------------------------------------------------------------------------------------------
# The loop


def default_out(cfg: OfflineConfig, lcfg: LearnerConfig, ds: Dataset) -> Path:
    """runs/<dataset>-d<critic depth>-<time>."""
    return rundir.default_out_dir(Path(ds.name).name, lcfg.network.critic_depth)


def next_boundary(step: int, total: int, *everies: int) -> int:
    """The first step after `step` that ends a chunk: a multiple of any `every` (> 0) or `total`."""
    ends = [total] + [(step // e + 1) * e for e in everies if e > 0]
    return min(ends)


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
    out = Path(cfg.out) if cfg.out else default_out(cfg, lcfg, ds)
    cfg = dataclasses.replace(cfg, out=str(out))
    config = {"offline": cfg, "learner": lcfg, "dataset": _dataset_info(ds)}
    run = rundir.RunDir.create(
        out, config, resume=resume, ignore_on_resume=RESUMABLE_FIELDS,
        keep_checkpoints=cfg.keep_checkpoints,
    )  # fmt: skip
    with run:
        data = dataset_arrays(ds)
        trainer = Trainer(nets, lcfg, cfg, data, choose_sampler(cfg, data))
        loop = _Loop(cfg, nets, run, trainer, evaluator, progress)
        carry = loop.start(dims_of(ds), lcfg, resume, echo)
        echo(f"run dir {out}; {ds.num_transitions:,} transitions; sampler {trainer.sampler}")
        carry = loop.run(carry)
        if loop.nonfinite_step >= 0:
            path = loop.checkpoint(carry)
            run.write_summary(loop.summary(carry, ds, stopped="non_finite"))
            raise rundir.NonFiniteLoss(
                f"non-finite loss or parameters at SGD step {loop.nonfinite_step}; stopped and "
                f"saved the last finite state to {path}"
            )
        summary = loop.summary(carry, ds)
        run.write_summary(summary)
    return summary


# `out` is where the run lives, not how it trains: a moved or re-spelled path still resumes.
RESUMABLE_FIELDS = ("offline.steps", "offline.out")


def initial_carry(nets: learner.Networks, lcfg: LearnerConfig, dims, seed: int) -> Carry:
    """The run's starting point: fresh learner state and sampling key from `seed`."""
    init_key, sample_key = jax.random.split(jax.random.PRNGKey(seed))
    return Carry(learner=learner.init(nets, lcfg, dims, init_key), key=sample_key)


def eval_key(seed: int, step: int) -> jax.Array:
    """The evaluation key at `step`: depends only on (seed, step), so reruns and resumed runs
    evaluate alike."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(seed), 1), step)


class _Loop:
    """The host side of one run: chunks, logging, evaluation, checkpoints, the summary."""

    def __init__(self, cfg, nets, run: rundir.RunDir, trainer: Trainer, evaluator, progress):
        self.cfg, self.nets, self.rundir, self.trainer = cfg, nets, run, trainer
        self.evaluator, self.progress = evaluator, progress
        self.ckpt_every = cfg.checkpoint_every or cfg.eval_every
        self.clock = rundir.Clock()
        self.step = 0
        self.last_eval: dict[str, float] = {}
        self.nonfinite_step = -1  # the first non-finite SGD step, once training hit one

    def start(self, dims, lcfg: LearnerConfig, resume: bool, echo) -> Carry:
        """Fresh learner state, or the newest checkpoint's when resuming."""
        fresh = initial_carry(self.nets, lcfg, dims, self.cfg.seed)
        restored = self.rundir.restore(fresh) if resume else None
        if restored is None:
            return fresh
        carry, self.step, meta = restored
        self.clock = rundir.Clock(
            wall=meta.get("wall_seconds", 0.0),
            train=meta.get("train_seconds", 0.0),
            compile=meta.get("compile_seconds", 0.0),
        )
        echo(f"resumed {self.rundir.path} at SGD step {self.step:,}")
        return carry

    def run(self, carry: Carry) -> Carry:
        """Chunks of SGD steps up to cfg.steps, with log/eval/checkpoint events between them."""
        t_start, wall0 = time.perf_counter(), self.clock.wall
        self.clock.compile += self.trainer.compile(carry)
        cfg, disable = self.cfg, None if self.progress is None else not self.progress
        with rundir.Progress(
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
                event = {f"train/{k}": v for k, v in means.items()}
                if bad >= 0:  # the carry holds the last finite state (SGD step bad - 1)
                    end = bad - 1
                event["perf/sgd_steps_per_s"] = (end - self.step) / max(seconds, 1e-9)
                self.step = end
                bar.update(end)
                if bad >= 0:
                    self.rundir.log(end, event)
                    self.clock.wall = wall0 + time.perf_counter() - t_start
                    self.nonfinite_step = bad
                    return carry
                if _due(cfg.eval_every, end) or end == cfg.steps:
                    event.update(self.evaluate(carry))
                    bar.set_eval(success=event["eval/success"])
                if _due(cfg.log_every, end) or "eval/success" in event or end == cfg.steps:
                    self.rundir.log(end, event)
                self.clock.wall = wall0 + time.perf_counter() - t_start
                if _due(self.ckpt_every, end) or end == cfg.steps:
                    self.checkpoint(carry)
        if not self.last_eval:  # resumed a finished run: evaluate what it holds
            self.evaluate(carry)
        self.clock.wall = wall0 + time.perf_counter() - t_start
        return carry

    def evaluate(self, carry: Carry) -> dict[str, float]:
        """OGBench's task evaluation of the deterministic actor, as `eval/...` metrics."""
        t0 = time.perf_counter()
        key = eval_key(self.cfg.seed, self.step)
        metrics = self.evaluator(self.nets, carry.learner.actor.params, key)
        out = {f"eval/{k}": float(v) for k, v in metrics.items()}
        out["eval/seconds"] = time.perf_counter() - t0
        self.last_eval = out
        return out

    def checkpoint(self, carry: Carry) -> Path:
        meta = {
            "sgd_steps": self.step,
            "wall_seconds": self.clock.wall,
            "train_seconds": self.clock.train,
            "compile_seconds": self.clock.compile,
        }
        return self.rundir.save_checkpoint(carry, self.step, meta)

    def summary(self, carry: Carry, ds: Dataset, stopped: str = "budget") -> dict[str, Any]:
        """summary.json: why it stopped, final evaluation, steps, seconds, throughput, sampler."""
        train_s = max(self.clock.train, 1e-9)
        d = jax.devices()[0]
        return {
            "dataset": ds.name,
            "run_dir": str(self.rundir.path),
            "stopped": stopped,
            "sgd_steps": int(carry.learner.step),
            "wall_seconds": round(self.clock.wall, 3),
            "train_seconds": round(self.clock.train, 3),
            "compile_seconds": round(self.clock.compile, 3),
            "sgd_steps_per_s": int(carry.learner.step) / train_s,
            "sampler": self.trainer.sampler,
            "device": f"{d.platform}:{getattr(d, 'device_kind', '') or d.platform}",
            **self.last_eval,
        }


def _due(every: int, step: int) -> bool:
    return every > 0 and step % every == 0


def _dataset_info(ds: Dataset) -> dict[str, Any]:
    return {
        "name": ds.name,
        "path": str(ds.metadata.get("path", "")),
        "transitions": ds.num_transitions,
        "episodes": ds.num_episodes,
        "obs_dim": ds.obs_dim,
        "action_dim": ds.action_dim,
        "goal_indices": list(ds.goal_indices),
    }
