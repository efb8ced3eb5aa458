"""The online loop's host side: the jitted epoch as a `Chunk` of the one host loop.

One training step takes `num_envs * unroll_length` env steps; a budget of `steps` env steps runs
ceil(steps / that) training steps and the run reports the exact number taken. Epochs end at the
next log, eval or checkpoint boundary (in training steps), so the spacing of events never changes
what is computed: a run resumed from a checkpoint continues bit for bit.

Every SGD update whose loss or new parameters are not finite is discarded (the state keeps the
last finite parameters); the epoch then stops after its training step, the host saves that state
as a checkpoint and raises `NonFiniteLoss` naming the SGD and env step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from crlkit import metric_names as names
from crlkit.config import LearnerConfig
from crlkit.runs.checkpoint import Restored
from crlkit.runs.rundir import RunDir, default_out_dir
from crlkit.runs.sinks import TrackingConfig
from crlkit.train import evaluate, parallel
from crlkit.train.hostloop import Events, HostLoop
from crlkit.train.online.config import RESUMABLE_FIELDS, OnlineConfig, config_dict
from crlkit.train.online.epoch import (
    EpochStats,
    OnlineState,
    Setup,
    empty_replay,
    init_state,
    jitted_epoch,
    make_env,
    make_setup,
)


class OnlineChunk:
    """The online regime for the host loop: loop steps are training steps, logged as env steps."""

    unit = "env steps"
    evaluate_at_start = True

    def __init__(self, cfg: OnlineConfig, setup: Setup):
        self.cfg, self.setup = cfg, setup
        self.spt = cfg.steps_per_train_step
        self.total = cfg.train_steps
        self.eval_env = make_env(cfg.eval_env, cfg.backend) if cfg.eval_env else setup.env
        self.compiled: Any = None
        # The learning-rate schedule's horizon: the SGD updates the budget plans.
        planned = max(self.total - cfg.prefill_train_steps, 0) * cfg.updates_per_step
        self._init = jax.jit(lambda k: init_state(setup, k, planned))

    def events(self) -> Events:
        """The env-step intervals of the config in training steps (None or 0: never)."""
        return Events(
            *(
                self._every(i)
                for i in (self.cfg.log_every, self.cfg.eval_every, self.cfg.checkpoint_every)
            )
        )

    def _every(self, env_steps: int | None) -> int | None:
        if not env_steps or env_steps <= 0:
            return None
        return max(1, math.ceil(env_steps / self.spt))

    # -- state --------------------------------------------------------------------------------

    def init(self) -> OnlineState:
        return self._init(jax.random.PRNGKey(self.cfg.seed))

    def template(self) -> tuple[OnlineState, Any]:
        """The abstract state (without its buffer) and buffer, on the shardings they run on."""
        shapes = jax.eval_shape(self._init, jax.random.PRNGKey(self.cfg.seed))
        shardings = self.setup.shardings(shapes)
        if shardings is not None:
            shapes = jax.tree.map(
                lambda t, s: jax.ShapeDtypeStruct(t.shape, t.dtype, sharding=s), shapes, shardings
            )
        return shapes.replace(replay=None), shapes.replay

    def restored(self, found: Restored) -> OnlineState:
        """The restored state; a checkpoint saved without its buffer gets an empty one."""
        replay = found.replay
        if replay is None:
            where = None if self.setup.mesh is None else self.template()[1]
            where = jax.tree.map(lambda t: t.sharding, where)
            replay = jax.jit(lambda: empty_replay(self.setup), out_shardings=where)()
        state = found.tree.replace(replay=replay)
        if self.setup.mesh is not None:  # empty leaves come back replicated: split them too
            state = parallel.reshard(state, self.setup.shardings(state))
        return state

    def done(self, state: OnlineState) -> int:
        return int(state.train_steps)

    def logged(self, done: int) -> int:
        return done * self.spt

    # -- compiled epoch -----------------------------------------------------------------------

    def compile(self, state: OnlineState) -> None:
        """AOT-compile the epoch once for any number of steps (JAX's cache serves an equal setup
        again, e.g. a resumed run in the same process)."""
        self.compiled = jitted_epoch.lower(self.setup, state, jnp.int32(0)).compile()

    def run(self, state: OnlineState, done: int, n: int) -> tuple[OnlineState, EpochStats, int]:
        state, stats = self.compiled(state, jnp.int32(n))
        return state, jax.device_get(stats), int(state.nonfinite_step)

    def metrics(self, stats: EpochStats, steps: int, seconds: float, state) -> dict[str, float]:
        """Host means of the epochs' sums (`steps` training steps), plus their throughput."""
        env_steps = steps * self.spt
        updates = max(float(stats.updates), 1.0)
        out = {names.TRAIN + k: float(v) / updates for k, v in stats.learner.items()}
        out[names.ROLLOUT_TIME_AT_GOAL] = float(stats.at_goal) / max(env_steps, 1.0)
        out[names.ROLLOUT_EPISODES] = float(stats.episodes)
        out[names.ENV_STEPS_PER_S] = env_steps / max(seconds, 1e-9)
        out[names.SGD_STEPS_PER_S] = float(stats.updates) / max(seconds, 1e-9)
        out[names.SGD_STEPS] = int(state.learner.step)
        return out

    # -- events -------------------------------------------------------------------------------

    def evaluate(self, state: OnlineState, done: int) -> dict[str, float]:
        """Fresh-goal (and OGBench task) evaluation of the deterministic actor."""
        params = state.learner.actor.params
        if self.setup.mesh is not None:  # evaluated on this process's first device
            params = parallel.local_copy(params)
        return evaluate_actor(self.cfg, self.setup.nets, params, self.eval_env, done)

    def checkpoint(self, state: OnlineState) -> tuple[OnlineState, Any, dict]:
        replay = state.replay if self.cfg.buffer_in_checkpoint else None
        done = int(state.train_steps)
        meta = {"env_steps": done * self.spt, "train_steps": done}
        return state.replace(replay=None), replay, meta

    def summary(self, state: OnlineState, train_seconds: float) -> dict[str, Any]:
        env_steps = int(state.train_steps) * self.spt
        sgd = int(state.learner.step)
        return {
            "env": self.setup.spec.name,
            "eval_env": self.eval_env.spec.name,
            "episode_length": self.eval_env.spec.episode_length,
            "env_steps": env_steps,
            "train_steps": int(state.train_steps),
            "sgd_steps": sgd,
            "env_steps_per_s": env_steps / train_seconds,
            "sgd_steps_per_s": sgd / train_seconds,
            "backend": self.setup.spec.backend,
        }


def eval_keys(seed: int, done: int) -> tuple[jax.Array, jax.Array]:
    """(fresh-goal key, task key) of the evaluation after `done` training steps: they depend
    only on (seed, done), so a rerun, a resumed run and `crlkit eval` evaluate alike."""
    key = jax.random.fold_in(jax.random.PRNGKey(seed + 1), done)
    k_fresh, k_tasks = jax.random.split(key)
    return k_fresh, k_tasks


def evaluate_actor(
    cfg: OnlineConfig, nets, params, env, done: int, *, fresh: bool = True, tasks: bool = True
) -> dict[str, float]:
    """The online evaluation of actor `params` after `done` training steps, as `eval/...` and
    `eval_tasks/...` metrics: `cfg.eval_episodes` fresh goals and, in envs with fixed tasks,
    `cfg.eval_episodes_per_task` episodes of each (`fresh`/`tasks`: which of the two)."""
    k_fresh, k_tasks = eval_keys(cfg.seed, done)
    policy = evaluate.actor_policy(nets, params)
    out: dict[str, float] = {}
    if fresh:
        found = evaluate.evaluate_fresh_goals(env, policy, k_fresh, cfg.eval_episodes)
        out.update(names.prefixed(names.EVAL, found))
    if tasks and env.spec.num_tasks and cfg.eval_episodes_per_task:
        found = evaluate.evaluate_tasks(env, policy, k_tasks, cfg.eval_episodes_per_task)
        out.update(names.prefixed(names.EVAL_TASKS, found))
    return out


def train(
    online: OnlineConfig,
    learner: LearnerConfig,
    out: str | Path | None = None,
    *,
    resume: bool = False,
    start_over: bool = False,
    progress: bool | None = None,
    tracking: TrackingConfig | None = None,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train CRL online; returns the summary (also written to <run dir>/summary.json).

    Args:
      online, learner: the run's configs.
      out: run directory (default runs/<env>-d<depth>-s<seed>-<time>); must be new unless `resume`.
      resume: continue the run in `out` from its newest checkpoint; the stored config must equal
        this one except `RESUMABLE_FIELDS` (RunDirError names the fields that differ).
      start_over: with `resume`, start again from step 0 when every checkpoint is unreadable
        (else that refuses the resume).
      progress: tqdm bar (None: only on a terminal).
      tracking: optional TensorBoard / W&B sinks, with the run's name, tags and group there.
      echo: where one-line status messages go.

    Raises:
      ValueError (incl. RunDirError): bad config, env or run dir, one line.
      RunStopped: training diverged (`NonFiniteLoss`, the last finite state was checkpointed
        first) or a stop signal arrived (checkpointed first).
    """
    setup = make_setup(online, learner)
    if out is None:
        out = default_out_dir(online.env, learner.network.critic_depth, online.seed)
    run = RunDir.create(
        out,
        config_dict(online, learner),
        resume=resume,
        ignore_on_resume=RESUMABLE_FIELDS,
        tracking=tracking,
    )
    with run:
        chunk = OnlineChunk(online, setup)
        loop = HostLoop(
            chunk,
            run,
            chunk.events(),
            progress=progress,
            echo=echo,
            resume=resume,
            start_over=start_over,
        )
        return loop.train()
