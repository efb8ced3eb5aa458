"""The online loop's host side: run dir, compiled epochs between events, evaluation, summary.

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
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from crlkit import metric_names as names
from crlkit.config import LearnerConfig
from crlkit.runs.checkpoint import RunDirError
from crlkit.runs.progress import Progress
from crlkit.runs.rundir import RunDir, default_out_dir
from crlkit.train import evaluate, parallel
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


class _Loop:
    """The host side of one run: owns the compiled epoch, the run dir and the progress bar."""

    def __init__(
        self, cfg: OnlineConfig, setup: Setup, run: RunDir, progress: bool | None, echo: Callable
    ):
        self.setup, self.run = setup, run
        self.echo = echo if run.primary else (lambda _: None)
        self.cfg = cfg
        self.spt = self.cfg.steps_per_train_step
        self.total = self.cfg.train_steps
        self.clock = Clock()
        self.compiled: Any = None  # this run's compiled epoch
        self.eval_env = make_env(cfg.eval_env, cfg.backend) if cfg.eval_env else setup.env
        self.progress = progress
        self.last_eval: dict[str, float] = {}

    # -- setup --------------------------------------------------------------------------------

    def start(self, resume: bool) -> OnlineState:
        """Fresh state, or the newest checkpoint's when resuming (fresh if none was written)."""
        key = jax.random.PRNGKey(self.cfg.seed)
        planned = max(self.total - self.cfg.prefill_train_steps, 0) * self.cfg.updates_per_step
        init = jax.jit(lambda k: init_state(self.setup, k, planned))
        if resume:
            template = _on_devices(jax.eval_shape(init, key), self.setup)
            restored = self._restore(template)
            if restored is not None:
                return restored
        return init(key)

    def _restore(self, template: OnlineState) -> OnlineState | None:
        for with_buffer in (True, False):  # the run may have saved its buffer or not
            tmpl = template if with_buffer else template.replace(replay=None)
            try:
                found = self.run.restore(tmpl)
            except RunDirError:
                if not with_buffer:
                    raise
                continue
            if found is None:
                return None
            state, step, meta = found
            if self.setup.mesh is not None:  # empty leaves come back replicated: split them too
                state = parallel.reshard(state, self.setup.shardings(state))
            self.clock = Clock.from_meta(meta)
            if state.replay is None:
                where = None if self.setup.mesh is None else template.replay
                where = jax.tree.map(lambda t: t.sharding, where)
                empty = jax.jit(lambda: empty_replay(self.setup), out_shardings=where)
                state = state.replace(replay=empty())
            self.echo(f"resumed {self.run.path} at env step {step:,}")
            return state
        return None

    def compile(self, state: OnlineState):
        """AOT-compile the epoch once for any number of steps (JAX's cache serves an equal setup
        again, e.g. a resumed run in the same process)."""
        t0 = time.perf_counter()
        self.echo(f"compiling the training epoch on {parallel.topology()['devices']} device(s) ...")
        self.compiled = jitted_epoch.lower(self.setup, state, jnp.int32(0)).compile()
        seconds = time.perf_counter() - t0
        self.clock.compile += seconds
        self.echo(f"compiled in {seconds:.1f} s")
        return self.compiled

    def echo_estimate(self, remaining_s: float) -> None:
        """On a CPU, one line when the rest of the budget looks longer than an hour."""
        line = wall_estimate(remaining_s, self.clock.wall + self.clock.compile)
        if line:
            self.echo(line)

    # -- events -------------------------------------------------------------------------------

    def _every(self, env_steps_interval: int) -> int | None:
        """An env-step interval in training steps (None: disabled)."""
        if env_steps_interval <= 0:
            return None
        return max(1, math.ceil(env_steps_interval / self.spt))

    def next_stop(self, done: int) -> int:
        """The next training step at which something happens (log, eval, checkpoint, end)."""
        intervals = (self.cfg.log_every, self.cfg.eval_every, self.cfg.checkpoint_every)
        return next_boundary(done, self.total, *(self._every(i) for i in intervals))

    def due(self, interval: int, done: int) -> bool:
        return due(self._every(interval), done)

    def evaluate(self, state: OnlineState, env_steps: int) -> dict[str, float]:
        """Fresh-goal (and OGBench task) evaluation of the deterministic actor (process 0 only:
        the others return {})."""
        if not self.run.primary:
            return {}
        t0 = time.perf_counter()
        self.echo(f"evaluating at env step {env_steps:,} ...")
        key = jax.random.fold_in(jax.random.PRNGKey(self.cfg.seed + 1), env_steps // self.spt)
        k_fresh, k_tasks = jax.random.split(key)
        params = state.learner.actor.params
        if self.setup.mesh is not None:  # evaluated on this process's first device
            params = parallel.local_copy(params)
        policy = evaluate.actor_policy(self.setup.nets, params)
        env = self.eval_env
        fresh = evaluate.evaluate_fresh_goals(env, policy, k_fresh, self.cfg.eval_episodes)
        out = names.prefixed(names.EVAL, fresh)
        if env.spec.num_tasks and self.cfg.eval_episodes_per_task:
            tasks = evaluate.evaluate_tasks(env, policy, k_tasks, self.cfg.eval_episodes_per_task)
            out.update(names.prefixed(names.EVAL_TASKS, tasks))
        self.last_eval = out
        seconds = time.perf_counter() - t0
        self.echo(f"evaluated in {seconds:.1f} s: success {out[names.SUCCESS]:.2f}")
        return out

    def checkpoint(self, state: OnlineState, env_steps: int) -> Path:
        tree = state if self.cfg.buffer_in_checkpoint else state.replace(replay=None)
        meta = {"env_steps": env_steps, "train_steps": int(state.train_steps), **self.clock.meta()}
        return self.run.save_checkpoint(tree, env_steps, meta)


def _epoch_metrics(
    stats: EpochStats, env_steps: int, sgd_steps: int, seconds: float
) -> dict[str, float]:
    """Host means of an epoch's sums (`env_steps` taken in it), plus its throughput."""
    stats = jax.device_get(stats)
    updates = max(float(stats.updates), 1.0)
    out = {names.TRAIN + k: float(v) / updates for k, v in stats.learner.items()}
    out[names.ROLLOUT_TIME_AT_GOAL] = float(stats.at_goal) / max(env_steps, 1.0)
    out[names.ROLLOUT_EPISODES] = float(stats.episodes)
    out[names.ENV_STEPS_PER_S] = env_steps / max(seconds, 1e-9)
    out[names.SGD_STEPS_PER_S] = float(stats.updates) / max(seconds, 1e-9)
    out[names.SGD_STEPS] = sgd_steps
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
        this one except `RESUMABLE_FIELDS` (RunDirError names the fields that differ).
      progress: tqdm bar (None: only on a terminal).
      tensorboard, wandb_project: optional extra metric sinks.
      echo: where one-line status messages go.

    Raises:
      ValueError (incl. RunDirError): bad config, env or run dir, one line.
      NonFiniteLoss: training diverged; the last finite state was checkpointed first.
    """
    setup = make_setup(online, learner)
    if out is None:
        out = default_out_dir(online.env, learner.network.critic_depth)
    run = RunDir.create(
        out,
        config_dict(online, learner),
        resume=resume,
        ignore_on_resume=RESUMABLE_FIELDS,
        tensorboard=tensorboard,
        wandb_project=wandb_project,
        checkpoint_format="npz" if setup.mesh is None else "orbax",
    )
    with run:
        loop = _Loop(online, setup, run, progress, echo)
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
        run.log(0, {**loop.evaluate(state, 0), names.SGD_STEPS: 0})
    first_epoch = True
    disable = progress_disabled(loop.progress) if run.primary else True
    bar = Progress(loop.total * spt, initial=done * spt, disable=disable)
    with bar:
        while done < loop.total:
            n = loop.next_stop(done) - done
            t0 = time.perf_counter()
            state, stats = compiled(state, jnp.int32(n))
            jax.block_until_ready(state)
            seconds = time.perf_counter() - t0
            loop.clock.train += seconds
            before, done = done, int(state.train_steps)
            if first_epoch:
                first_epoch = False
                loop.echo_estimate((loop.total - done) / max(done - before, 1) * seconds)
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
                if names.SUCCESS in event:
                    bar.set_eval(success=event[names.SUCCESS])
            run.log(env_steps, event)
            bar.update(env_steps)
            loop.clock.wall = wall0 + time.perf_counter() - t_start
            if loop.due(loop.cfg.checkpoint_every, done) or is_last:
                loop.checkpoint(state, env_steps)
    loop.clock.wall = wall0 + time.perf_counter() - t_start
    if not loop.last_eval:  # resumed a finished run: evaluate what it ended with
        loop.evaluate(state, done * spt)
    return _write_summary(loop, state, "budget")


def _on_devices(template: OnlineState, setup: Setup) -> OnlineState:
    """The abstract state with the shardings a restored checkpoint is placed on."""
    shardings = setup.shardings(template)
    if shardings is None:
        return template
    return jax.tree.map(
        lambda t, s: jax.ShapeDtypeStruct(t.shape, t.dtype, sharding=s), template, shardings
    )


def _write_summary(loop: _Loop, state: OnlineState, stopped: str) -> dict[str, Any]:
    env_steps = int(state.train_steps) * loop.spt
    sgd = int(state.learner.step)
    train_s = max(loop.clock.train, 1e-9)
    summary = {
        "env": loop.setup.spec.name,
        "eval_env": loop.eval_env.spec.name,
        "run_dir": str(loop.run.path),
        "stopped": stopped,
        "env_steps": env_steps,
        "train_steps": int(state.train_steps),
        "sgd_steps": sgd,
        **loop.clock.summary(),
        "env_steps_per_s": env_steps / train_s,
        "sgd_steps_per_s": sgd / train_s,
        "backend": loop.setup.spec.backend,
        "device": device_name(),
        **parallel.topology(),
        "params": param_count(state.learner),
        **loop.last_eval,
    }
    loop.run.write_summary(summary)
    return summary
