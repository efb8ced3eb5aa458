"""The online loop (the paper's regime): explore in vectorized envs, learn to reach goals.

```
epoch(state, n)       jitted once; a lax.while_loop over n training steps (n is a traced scalar,
                      so any budget or event spacing reuses the one compiled program)
  training step       scan over unroll_length env steps with the stochastic actor
                      -> replay insert -> scan over updates_per_step of
                         [sample minibatch + geometric future goal -> learner.update]
host loop             only times, evaluates, logs and checkpoints between epochs
```

One training step takes `num_envs * unroll_length` env steps; a budget of `steps` env steps runs
ceil(steps / that) training steps and the run reports the exact number taken. Epochs end at the
next log, eval or checkpoint boundary (in training steps), so the spacing of events never changes
what is computed: a run resumed from a checkpoint continues bit for bit.

Every SGD update whose loss or new parameters are not finite is discarded (the state keeps the
last finite parameters); the epoch then stops after its training step, the host saves that state
as a checkpoint and raises `NonFiniteLoss` naming the SGD and env step.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp

from crlkit import learner as learner_lib
from crlkit.config import LearnerConfig, NetworkConfig, from_dict, option_field, to_dict
from crlkit.data import replay as replay_lib
from crlkit.envs.api import EnvState
from crlkit.envs.backends import BACKEND_CHOICES
from crlkit.train import evaluate, rundir
from crlkit.train.rundir import NonFiniteLoss

# Changing these on --resume cannot change the trained parameters, so resume allows it.
RESUMABLE_FIELDS = (
    "online.steps",
    "online.eval_every",
    "online.eval_episodes",
    "online.eval_episodes_per_task",
    "online.log_every",
    "online.checkpoint_every",
    "online.buffer_in_checkpoint",
)


def _check_positive_int(name: str, value: int, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class OnlineConfig:
    """The online loop's settings; defaults are the paper's (512 envs, unroll 62, batch 512, ...).

    The learner (networks, energy, losses, learning rates) is a separate `LearnerConfig`.
    """

    env: str = option_field("humanoid", "Env to train in (see: crlkit envs).")
    backend: str = option_field(
        "auto", "Physics backend; auto: native MuJoCo on CPU, mjx on GPU.", BACKEND_CHOICES
    )
    seed: int = option_field(0, "Seed of every random draw (params, envs, replay, evaluation).")
    steps: int = option_field(
        100_000_000,
        "Env-step budget; runs ceil(steps / (num_envs * unroll_length)) training steps and "
        "reports the exact count.",
    )
    num_envs: int = option_field(512, "Parallel envs stepped together.")
    unroll_length: int = option_field(62, "Env steps per env between two rounds of SGD updates.")
    batch_size: int = option_field(
        512, "Transitions per SGD minibatch (also the InfoNCE negatives)."
    )
    updates_per_step: int = option_field(
        800,
        "SGD updates after each num_envs * unroll_length env steps "
        "(paper: 800 per 31,744 env steps, UTD about 1:40).",
    )
    gamma: float = option_field(
        0.99, "Discount of the geometric future-goal offset in relabelling."
    )
    replay_steps_per_env: int = option_field(
        10_000, "Replay capacity per env in env steps (total capacity x num_envs)."
    )
    eval_every: int = option_field(
        2_000_000, "Evaluate every this many env steps (0: only at the start and the end)."
    )
    eval_episodes: int = option_field(
        128, "Episodes on fresh goals per evaluation (deterministic actor)."
    )
    eval_episodes_per_task: int = option_field(
        10, "Episodes per OGBench task per evaluation (maze envs with fixed tasks; 0: skip)."
    )
    log_every: int = option_field(
        500_000, "Log training metrics every this many env steps (also at each eval)."
    )
    checkpoint_every: int = option_field(
        10_000_000, "Checkpoint every this many env steps (0: only at the end)."
    )
    buffer_in_checkpoint: bool = option_field(
        True, "Store the replay buffer in checkpoints (exact resume; large files)."
    )

    def __post_init__(self) -> None:
        from crlkit.envs.registry import canonical_name

        canonical_name(self.env)  # one-line ValueError naming the unknown env
        if self.backend not in BACKEND_CHOICES:
            raise ValueError(
                f"unknown backend {self.backend!r}; valid: {', '.join(BACKEND_CHOICES)}"
            )
        _check_positive_int("seed", self.seed, minimum=0)
        for name in ("steps", "num_envs", "unroll_length", "batch_size", "updates_per_step",
                     "eval_episodes", "log_every"):  # fmt: skip
            _check_positive_int(name, getattr(self, name))
        for name in ("eval_every", "checkpoint_every", "eval_episodes_per_task"):
            _check_positive_int(name, getattr(self, name), minimum=0)
        if not 0.0 < self.gamma < 1.0:
            raise ValueError(f"gamma must lie strictly between 0 and 1, got {self.gamma!r}")
        if self.replay_steps_per_env < self.unroll_length:
            raise ValueError(
                f"replay_steps_per_env ({self.replay_steps_per_env}) must be >= unroll_length "
                f"({self.unroll_length}): one unroll must fit in the buffer"
            )

    @property
    def steps_per_train_step(self) -> int:
        """Env steps one training step takes."""
        return self.num_envs * self.unroll_length

    @property
    def train_steps(self) -> int:
        """Training steps the budget runs (the last one may overshoot `steps`)."""
        return math.ceil(self.steps / self.steps_per_train_step)


# The bare `crlkit online`: learns to reach goals in the open point-mass arena in a few CPU
# minutes (tests/test_online.py checks >= 0.9 fresh-goal success on this budget).
QUICKSTART = (
    OnlineConfig(
        env="pointmaze-arena",
        steps=307_200,
        num_envs=32,
        unroll_length=50,
        batch_size=256,
        updates_per_step=32,
        replay_steps_per_env=2_000,
        eval_every=51_200,
        eval_episodes=64,
        eval_episodes_per_task=10,
        log_every=12_800,
        checkpoint_every=51_200,
    ),
    LearnerConfig(network=NetworkConfig(width=64, critic_depth=4, actor_depth=4)),
)
PRESETS: dict[str, tuple[OnlineConfig, LearnerConfig]] = {
    "paper": (OnlineConfig(), LearnerConfig()),
    "quickstart": QUICKSTART,
}


def config_dict(online: OnlineConfig, learner: LearnerConfig) -> dict[str, Any]:
    """The run's config.json content."""
    return {"online": to_dict(online), "learner": to_dict(learner)}


def configs_from_dict(data: dict[str, Any]) -> tuple[OnlineConfig, LearnerConfig]:
    """Inverse of `config_dict` (e.g. a run dir's config.json)."""
    return from_dict(OnlineConfig, data["online"]), from_dict(LearnerConfig, data["learner"])


# ---------------------------------------------------------------------------------------------
# State


@flax.struct.dataclass
class OnlineState:
    """Everything that continues a run: learner, envs, replay, RNG and counters.

    Attributes:
      learner: params, optimizer states, log alpha, SGD step, learner RNG.
      env: [num_envs] batched env state (physics, goals, per-env reset RNG).
      replay: the trajectory ring buffer (None in a checkpoint saved without it).
      key: the loop's RNG (exploration noise, minibatch sampling).
      train_steps: [] int32 training steps done.
      nonfinite_step: [] int32 SGD update (1-based) that was not finite, -1 while none was.
    """

    learner: learner_lib.CRLState
    env: EnvState
    replay: replay_lib.ReplayState | None
    key: jax.Array
    train_steps: jax.Array
    nonfinite_step: jax.Array


@flax.struct.dataclass
class EpochStats:
    """Sums over an epoch, reduced to means on the host (`_epoch_metrics`)."""

    learner: dict[str, jax.Array]  # sums of each learner metric over accepted updates
    updates: jax.Array  # accepted SGD updates
    at_goal: jax.Array  # env steps of the training rollouts spent within the success radius
    episodes: jax.Array  # training episodes that ended


@dataclasses.dataclass(frozen=True)
class Setup:
    """The static pieces of a run: env, sizes, networks and configs (never in a pytree)."""

    online: OnlineConfig
    learner: LearnerConfig
    env: Any
    dims: learner_lib.Dims
    nets: learner_lib.Networks

    @property
    def spec(self):
        return self.env.spec


@functools.lru_cache(maxsize=8)
def _make_env(name: str, backend: str):
    """One env object per (name, backend) in a process, so jitted evaluation compiles once."""
    from crlkit.envs import make

    return make(name, backend=backend)


def make_setup(online: OnlineConfig, learner: LearnerConfig) -> Setup:
    """Build the env and networks for a run (ValueError on an unusable combination)."""
    if learner.actor_loss != "sac":
        raise ValueError(
            f"actor_loss {learner.actor_loss!r} needs dataset actions; online training uses 'sac'"
        )
    env = _make_env(online.env, online.backend)
    spec = env.spec
    dims = learner_lib.Dims(spec.state_dim, spec.goal_dim, spec.action_dim)
    return Setup(online, learner, env, dims, learner_lib.make_networks(learner, dims))


def _replay_example(dims: learner_lib.Dims) -> dict[str, jax.ShapeDtypeStruct]:
    return {
        "state": jax.ShapeDtypeStruct((dims.state_dim,), jnp.float32),
        "action": jax.ShapeDtypeStruct((dims.action_dim,), jnp.float32),
    }


def init_state(setup: Setup, key: jax.Array) -> OnlineState:
    """A fresh run: new parameters, freshly reset envs, an empty buffer (jit it)."""
    cfg = setup.online
    k_learner, k_env, k_loop = jax.random.split(key, 3)
    return OnlineState(
        learner=learner_lib.init(setup.nets, setup.learner, setup.dims, k_learner),
        env=jax.vmap(setup.env.reset)(jax.random.split(k_env, cfg.num_envs)),
        replay=_empty_replay(setup),
        key=k_loop,
        train_steps=jnp.zeros((), jnp.int32),
        nonfinite_step=jnp.full((), -1, jnp.int32),
    )


def _empty_replay(setup: Setup) -> replay_lib.ReplayState:
    cfg = setup.online
    capacity = cfg.replay_steps_per_env * cfg.num_envs
    return replay_lib.init(_replay_example(setup.dims), cfg.num_envs, capacity)


# ---------------------------------------------------------------------------------------------
# The jitted epoch

_EPOCH_TRACES = [0]  # times `epoch` was traced (tests assert one compile per run)
_COMPILED: dict[Any, Any] = {}  # (setup, state shapes) -> compiled epoch, reused within a process


def epoch(setup: Setup, state: OnlineState, num_steps: jax.Array) -> tuple[OnlineState, EpochStats]:
    """Run `num_steps` (traced) training steps, stopping early after a non-finite update."""
    _EPOCH_TRACES[0] += 1
    stats = _zero_stats(setup, state)

    def running(carry):
        i, st, _ = carry
        return (i < num_steps) & (st.nonfinite_step < 0)

    def body(carry):
        i, st, acc = carry
        st, step_stats = training_step(setup, st)
        return i + 1, st, jax.tree.map(jnp.add, acc, step_stats)

    _, state, stats = jax.lax.while_loop(running, body, (jnp.int32(0), state, stats))
    return state, stats


def training_step(setup: Setup, state: OnlineState) -> tuple[OnlineState, EpochStats]:
    """Unroll the envs, insert into the buffer, then `updates_per_step` SGD updates."""
    key, k_unroll, k_updates = jax.random.split(state.key, 3)
    env_state, chunk, done, at_goal = _unroll(setup, state, k_unroll)
    replay = replay_lib.insert(state.replay, chunk, done)
    learner, nonfinite_step, sums, updates = _updates(setup, state.learner, replay, k_updates)
    stats = EpochStats(
        learner=sums,
        updates=updates,
        at_goal=jnp.sum(at_goal),
        episodes=jnp.sum(done),
    )
    new_state = state.replace(
        learner=learner,
        env=env_state,
        replay=replay,
        key=key,
        train_steps=state.train_steps + 1,
        nonfinite_step=nonfinite_step,
    )
    return new_state, stats


def _unroll(setup: Setup, state: OnlineState, key: jax.Array):
    """`unroll_length` env steps of every env with the stochastic actor.

    Returns (env state, chunk {"state", "action"} [L, E, ...], done [L, E], at_goal [L, E]); the
    stored state is the one the action was taken in, `done` marks the last step of an episode.
    """
    nets, state_dim = setup.nets, setup.dims.state_dim
    actor_params = state.learner.actor.params

    def env_step(env_state: EnvState, k: jax.Array):
        obs_state = env_state.obs[:, :state_dim]
        action = learner_lib.act(nets, actor_params, obs_state, env_state.goal, k, False)
        nxt = setup.env.step_batch(env_state, action)
        return nxt, ({"state": obs_state, "action": action}, nxt.done > 0, nxt.success)

    keys = jax.random.split(key, setup.online.unroll_length)
    env_state, (chunk, done, at_goal) = jax.lax.scan(env_step, state.env, keys)
    return env_state, chunk, done, at_goal


def _updates(setup: Setup, learner, replay, key):
    """`updates_per_step` SGD updates on fresh minibatches; non-finite updates are discarded.

    Returns (learner state, first non-finite SGD step or -1, metric sums, accepted updates).
    """
    cfg, goal_idx = setup.online, jnp.asarray(setup.spec.goal_indices)

    def sgd(carry, k):
        ls, bad_step = carry
        sample = replay_lib.sample(replay, k, cfg.batch_size, cfg.gamma)
        goal = sample.future["state"][:, goal_idx]
        batch = learner_lib.Batch(
            state=sample.transition["state"],
            action=sample.transition["action"],
            goal=goal,
            actor_goal=goal,
        )
        ls, bad_step, metrics, ok = learner_lib.update_if_finite(
            setup.nets, setup.learner, ls, batch, bad_step
        )
        return (ls, bad_step), (metrics, ok)

    keys = jax.random.split(key, cfg.updates_per_step)
    bad0 = jnp.full((), -1, jnp.int32)
    (learner, bad_step), (metrics, ok) = jax.lax.scan(sgd, (learner, bad0), keys)
    sums = {k: jnp.sum(v).astype(jnp.float32) for k, v in metrics.items()}
    return learner, bad_step, sums, jnp.sum(ok)


def _zero_stats(setup: Setup, state: OnlineState) -> EpochStats:
    shapes = jax.eval_shape(lambda s: training_step(setup, s)[1], state)
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


# ---------------------------------------------------------------------------------------------
# Host loop


def _training_part(setup: Setup) -> Setup:
    """`setup` with the fields the epoch never reads (budget, events) set to fixed values."""
    fixed = {name.split(".")[1]: getattr(OnlineConfig(), name.split(".")[1])
             for name in RESUMABLE_FIELDS}  # fmt: skip
    return dataclasses.replace(setup, online=dataclasses.replace(setup.online, **fixed))


def _device() -> str:
    d = jax.devices()[0]
    return f"{d.platform}:{getattr(d, 'device_kind', '') or d.platform}"


class _Loop:
    """The host side of one run: owns the compiled epoch, the run dir and the progress bar."""

    def __init__(self, setup: Setup, run: rundir.RunDir, progress: bool, echo: Callable):
        self.setup, self.run, self.echo = setup, run, echo
        self.cfg = setup.online
        self.spt = self.cfg.steps_per_train_step
        self.total = self.cfg.train_steps
        self.clock = rundir.Clock()
        self.show_progress = progress
        self.last_eval: dict[str, float] = {}

    # -- setup --------------------------------------------------------------------------------

    def start(self, resume: bool) -> OnlineState:
        """Fresh state, or the newest checkpoint's when resuming (fresh if none was written)."""
        key = jax.random.PRNGKey(self.cfg.seed)
        init = jax.jit(lambda k: init_state(self.setup, k))
        if resume:
            template = jax.eval_shape(init, key)
            restored = self._restore(template)
            if restored is not None:
                return restored
        return init(key)

    def _restore(self, template: OnlineState) -> OnlineState | None:
        for with_buffer in (True, False):  # the run may have saved its buffer or not
            tmpl = template if with_buffer else template.replace(replay=None)
            try:
                found = self.run.restore(tmpl)
            except rundir.RunDirError:
                if not with_buffer:
                    raise
                continue
            if found is None:
                return None
            state, step, meta = found
            self.clock = rundir.Clock(
                wall=meta.get("wall_seconds", 0.0),
                train=meta.get("train_seconds", 0.0),
                compile=meta.get("compile_seconds", 0.0),
            )
            if state.replay is None:
                state = state.replace(replay=jax.jit(lambda: _empty_replay(self.setup))())
            self.echo(f"resumed {self.run.path} at env step {step:,}")
            return state
        return None

    def compile(self, state: OnlineState):
        """AOT-compile the epoch once; any number of steps (and a later run of the same setup
        in this process) reuses it."""
        shapes = tuple((x.shape, x.dtype) for x in jax.tree.leaves(state))
        key = (_training_part(self.setup), jax.tree.structure(state), shapes)
        if key not in _COMPILED:
            t0 = time.perf_counter()
            fn = jax.jit(functools.partial(epoch, self.setup), donate_argnums=0)
            _COMPILED[key] = fn.lower(state, jnp.int32(0)).compile()
            self.clock.compile += time.perf_counter() - t0
        return _COMPILED[key]

    # -- events -------------------------------------------------------------------------------

    def _every(self, env_steps_interval: int) -> int | None:
        """An env-step interval in training steps (None: disabled)."""
        if env_steps_interval <= 0:
            return None
        return max(1, math.ceil(env_steps_interval / self.spt))

    def next_stop(self, done: int) -> int:
        """The next training step at which something happens (log, eval, checkpoint, end)."""
        stops = [self.total]
        for interval in (self.cfg.log_every, self.cfg.eval_every, self.cfg.checkpoint_every):
            every = self._every(interval)
            if every is not None:
                stops.append((done // every + 1) * every)
        return min(stops)

    def due(self, interval: int, done: int) -> bool:
        every = self._every(interval)
        return every is not None and done % every == 0

    def evaluate(self, state: OnlineState, env_steps: int) -> dict[str, float]:
        """Fresh-goal (and OGBench task) evaluation of the deterministic actor."""
        key = jax.random.fold_in(jax.random.PRNGKey(self.cfg.seed + 1), env_steps // self.spt)
        k_fresh, k_tasks = jax.random.split(key)
        policy = evaluate.actor_policy(self.setup.nets, state.learner.actor.params)
        env = self.setup.env
        out = {
            f"eval/{k}": v
            for k, v in evaluate.evaluate_fresh_goals(
                env, policy, k_fresh, self.cfg.eval_episodes
            ).items()
        }
        if self.setup.spec.num_tasks and self.cfg.eval_episodes_per_task:
            tasks = evaluate.evaluate_tasks(env, policy, k_tasks, self.cfg.eval_episodes_per_task)
            out.update({f"eval_tasks/{k}": v for k, v in tasks.items()})
        self.last_eval = out
        return out

    def checkpoint(self, state: OnlineState, env_steps: int) -> Path:
        tree = state if self.cfg.buffer_in_checkpoint else state.replace(replay=None)
        meta = {
            "env_steps": env_steps,
            "train_steps": int(state.train_steps),
            "wall_seconds": self.clock.wall,
            "train_seconds": self.clock.train,
            "compile_seconds": self.clock.compile,
        }
        return self.run.save_checkpoint(tree, env_steps, meta)


def _epoch_metrics(
    stats: EpochStats, env_steps: int, sgd_steps: int, seconds: float
) -> dict[str, float]:
    """Host means of an epoch's sums (`env_steps` taken in it), plus its throughput."""
    stats = jax.device_get(stats)
    updates = max(float(stats.updates), 1.0)
    out = {f"train/{k}": float(v) / updates for k, v in stats.learner.items()}
    out["rollout/time_at_goal"] = float(stats.at_goal) / max(env_steps, 1.0)
    out["rollout/episodes"] = float(stats.episodes)
    out["perf/env_steps_per_s"] = env_steps / max(seconds, 1e-9)
    out["perf/sgd_steps_per_s"] = float(stats.updates) / max(seconds, 1e-9)
    out["sgd_steps"] = sgd_steps
    return out


def train(
    online: OnlineConfig,
    learner: LearnerConfig,
    out: str | Path | None = None,
    *,
    resume: bool = False,
    progress: bool | None = None,
    tensorboard: bool = False,
    wandb_project: str | None = None,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train CRL online; returns the summary (also written to <run dir>/summary.json).

    Args:
      online, learner: the run's configs.
      out: run directory (default runs/<env>-d<depth>-<time>); must be new unless `resume`.
      resume: continue the run in `out` from its newest checkpoint; the stored config must equal
        this one except `RESUMABLE_FIELDS` (rundir.RunDirError names the fields that differ).
      progress: tqdm bar (None: only on a terminal).
      tensorboard, wandb_project: optional extra metric sinks.
      echo: where one-line status messages go.

    Raises:
      ValueError (incl. rundir.RunDirError): bad config, env or run dir, one line.
      NonFiniteLoss: training diverged; the last finite state was checkpointed first.
    """
    setup = make_setup(online, learner)
    if out is None:
        out = rundir.default_out_dir(online.env, learner.network.critic_depth)
    run = rundir.RunDir.create(
        out,
        config_dict(online, learner),
        resume=resume,
        ignore_on_resume=RESUMABLE_FIELDS,
        tensorboard=tensorboard,
        wandb_project=wandb_project,
    )
    with run:
        loop = _Loop(setup, run, progress, echo)
        return _run(loop, resume)


def _run(loop: _Loop, resume: bool) -> dict[str, Any]:
    """The host loop: epochs between events; log, evaluate, checkpoint; then the summary."""
    t_start = time.perf_counter()
    wall0 = loop.clock.wall
    state = loop.start(resume)
    done = int(state.train_steps)
    compiled = loop.compile(state)
    spt, run = loop.spt, loop.run
    if done == 0:
        run.log(0, {**loop.evaluate(state, 0), "sgd_steps": 0})
    bar = rundir.Progress(loop.total * spt, initial=done * spt, disable=_disable(loop))
    with bar:
        while done < loop.total:
            n = loop.next_stop(done) - done
            t0 = time.perf_counter()
            state, stats = compiled(state, jnp.int32(n))
            jax.block_until_ready(state)
            seconds = time.perf_counter() - t0
            loop.clock.train += seconds
            before, done = done, int(state.train_steps)
            env_steps = done * spt
            sgd = int(state.learner.step)
            event = _epoch_metrics(stats, (done - before) * spt, sgd, seconds)
            if int(state.nonfinite_step) >= 0:
                loop.clock.wall = wall0 + time.perf_counter() - t_start
                run.log(env_steps, event)
                path = loop.checkpoint(state, env_steps)
                _write_summary(loop, state, "non_finite")
                raise NonFiniteLoss(
                    f"non-finite loss or parameters at SGD step {int(state.nonfinite_step)} "
                    f"(env step {env_steps:,}); stopped and saved the last finite state to {path}"
                )
            is_last = done >= loop.total
            if loop.due(loop.cfg.eval_every, done) or is_last:
                event.update(loop.evaluate(state, env_steps))
                bar.set_eval(success=event["eval/success"])
            run.log(env_steps, event)
            bar.update(env_steps)
            loop.clock.wall = wall0 + time.perf_counter() - t_start
            if loop.due(loop.cfg.checkpoint_every, done) or is_last:
                loop.checkpoint(state, env_steps)
    loop.clock.wall = wall0 + time.perf_counter() - t_start
    if not loop.last_eval:  # resumed a finished run: evaluate what it ended with
        loop.evaluate(state, done * spt)
    return _write_summary(loop, state, "budget")


def _disable(loop: _Loop) -> bool | None:
    return None if loop.show_progress is None else not loop.show_progress


def _write_summary(loop: _Loop, state: OnlineState, stopped: str) -> dict[str, Any]:
    env_steps = int(state.train_steps) * loop.spt
    sgd = int(state.learner.step)
    train_s = max(loop.clock.train, 1e-9)
    summary = {
        "env": loop.setup.spec.name,
        "run_dir": str(loop.run.path),
        "stopped": stopped,
        "env_steps": env_steps,
        "train_steps": int(state.train_steps),
        "sgd_steps": sgd,
        "wall_seconds": round(loop.clock.wall, 3),
        "train_seconds": round(loop.clock.train, 3),
        "compile_seconds": round(loop.clock.compile, 3),
        "env_steps_per_s": env_steps / train_s,
        "sgd_steps_per_s": sgd / train_s,
        "backend": loop.setup.spec.backend,
        "device": _device(),
        **loop.last_eval,
    }
    loop.run.write_summary(summary)
    return summary
