"""`crlkit bench env`: env and physics throughput of one env on one backend, against MuJoCo C.

The timed program is what online training runs: one jitted `lax.scan` over `steps` control steps
of the wrapped env (auto-reset included), vmapped over `num_envs` envs, with uniform random actions
drawn inside the scan. Compilation is timed separately (first call); the reported time is the median
of `repeats` further calls.

The single-thread reference is plain MuJoCo C on one `MjData` in this process: `mj_step` called
`n_substeps` times from each of the physics states the batched run itself visited (recorded for the
first `baseline_envs` envs), so both figures step the same mix of contact situations. The ratio
`physics_steps_per_s / single_thread_physics_steps_per_s` says how much faster the backend is than
one core of plain MuJoCo; on a 2-core CPU the `native` backend's ideal is 2.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import statistics
import time
from collections.abc import Callable

import jax
import mujoco
import numpy as np

from crlkit.checks import check_fields
from crlkit.config import option_field
from crlkit.envs.backends import BACKEND_CHOICES

RESULT_KEYS = (
    "env_steps_per_s",
    "physics_steps_per_s",
    "single_thread_physics_steps_per_s",
    "ratio_to_single_thread",
)


@dataclasses.dataclass(frozen=True)
class BenchEnvConfig:
    """What `crlkit bench env` measures."""

    env: str = option_field("antmaze-large", "Registered env name (see `crlkit envs`).")
    backend: str = option_field(
        "auto", "Physics backend; auto: native on CPU, mjx on GPU/TPU.", BACKEND_CHOICES
    )
    num_envs: int = option_field(256, "Envs stepped together (vmapped).", minimum=1)
    steps: int = option_field(100, "Control steps per env in one timed call.", minimum=1)
    repeats: int = option_field(
        3, "Timed calls after the compiling one (the median is reported).", minimum=1
    )
    baseline_envs: int = option_field(
        16, "Envs whose visited states the single-thread MuJoCo C reference replays.", minimum=1
    )
    seed: int = option_field(0, "Seed for resets and actions.", minimum=0)

    def __post_init__(self):
        check_fields(self)


def make_env(name: str, backend: str):
    """crlkit.envs.make with backend errors turned into one-line ValueErrors."""
    from crlkit.envs import make

    try:
        return make(name, backend=backend)
    except NotImplementedError as err:
        raise ValueError(
            f"backend {backend!r} cannot run env {name!r} ({err}); use --backend native"
        ) from None


def _rollout_fn(env, cfg: BenchEnvConfig):
    """Jitted (states, key) -> (states, recorded physics of the first baseline_envs envs)."""
    k = min(cfg.baseline_envs, cfg.num_envs)
    action_dim = env.spec.action_dim

    def body(states, key):
        actions = jax.random.uniform(key, (cfg.num_envs, action_dim), minval=-1.0, maxval=1.0)
        p = states.physics
        record = (p.qpos[:k], p.qvel[:k], p.act[:k], p.time[:k], p.qacc_warmstart[:k])
        return env.step_batch(states, actions), record

    def rollout(states, key):
        return jax.lax.scan(body, states, jax.random.split(key, cfg.steps))

    return jax.jit(rollout)


def time_backend(env, cfg: BenchEnvConfig) -> dict:
    """First-call (compile + run) and median wall time of one rollout of `num_envs` envs."""
    key_reset, key_run = jax.random.split(jax.random.key(cfg.seed))
    states = jax.jit(jax.vmap(env.reset))(jax.random.split(key_reset, cfg.num_envs))
    rollout = _rollout_fn(env, cfg)
    t0 = time.perf_counter()
    _, record = jax.block_until_ready(rollout(states, key_run))
    first_call_s = time.perf_counter() - t0
    times = []
    for _ in range(cfg.repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(rollout(states, key_run))
        times.append(time.perf_counter() - t0)
    record = [np.asarray(x, np.float64) for x in record]
    return {"first_call_s": first_call_s, "run_s": statistics.median(times), "record": record}


def time_single_thread(
    mj_model: mujoco.MjModel, n_substeps: int, record, repeats: int, seed: int
) -> float:
    """Median physics steps/s of plain mj_step on one MjData, replaying the recorded states."""
    n = record[0].shape[0] * record[0].shape[1]  # steps x recorded envs
    qpos, qvel, act, warm = (x.reshape(n, x.shape[-1]) for x in (*record[:3], record[4]))
    t = record[3].reshape(n)
    lo, hi = mj_model.actuator_ctrlrange[:, 0], mj_model.actuator_ctrlrange[:, 1]
    ctrl = np.random.default_rng(seed).uniform(lo, hi, (n, mj_model.nu))
    d = mujoco.MjData(mj_model)
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(n):
            d.qpos[:], d.qvel[:], d.act[:], d.time = qpos[i], qvel[i], act[i], t[i]
            d.qacc_warmstart[:], d.ctrl[:] = warm[i], ctrl[i]
            for _ in range(n_substeps):
                mujoco.mj_step(mj_model, d)
        rates.append(n * n_substeps / (time.perf_counter() - t0))
    return statistics.median(rates)


def run_bench(cfg: BenchEnvConfig, log: Callable[[str], None] = print) -> dict:
    """Runs the benchmark and returns one result row (see RESULT_KEYS and docs/backends.md)."""
    env = make_env(cfg.env, cfg.backend)
    physics = env.unwrapped.backend
    n_sub = physics.n_substeps
    log(f"env {env.spec.name}, backend {env.spec.backend}, {cfg.num_envs} envs x {cfg.steps} steps")
    try:
        timing = time_backend(env, cfg)
    except (ValueError, NotImplementedError) as err:
        if env.spec.backend == "native":
            raise
        # MJX reports unsupported model features while tracing the step, deep inside JAX.
        raise ValueError(
            f"backend {env.spec.backend!r} failed to build the step of env {env.spec.name!r} "
            f"({str(err).splitlines()[0]}); use --backend native"
        ) from None
    single = time_single_thread(
        env.unwrapped.mj_model, n_sub, timing.pop("record"), cfg.repeats, cfg.seed
    )
    env_rate = cfg.num_envs * cfg.steps / timing["run_s"]
    row = {
        "env": env.spec.name,
        "backend": env.spec.backend,
        "num_envs": cfg.num_envs,
        "steps": cfg.steps,
        "n_substeps": n_sub,
        "threads": getattr(physics, "num_threads", None),
        "first_call_s": round(timing["first_call_s"], 3),
        "run_s": round(timing["run_s"], 4),
        "env_steps_per_s": round(env_rate, 1),
        "physics_steps_per_s": round(env_rate * n_sub, 1),
        "single_thread_physics_steps_per_s": round(single, 1),
        "ratio_to_single_thread": round(env_rate * n_sub / single, 3),
        "device": f"{jax.default_backend()} ({platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores)",
        "versions": {"jax": jax.__version__, "mujoco": mujoco.__version__},
    }
    for k in RESULT_KEYS:
        log(f"  {k}: {row[k]}")
    return row


__all__ = ["BenchEnvConfig", "make_env", "run_bench", "time_single_thread"]
