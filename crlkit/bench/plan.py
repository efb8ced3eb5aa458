"""`crlkit bench plan`: will a run fit? Compile the real online epoch without running it.

For an env, depth, width, batch and number of envs, the online loop's jitted epoch (the program
`crlkit online` runs: unroll -> replay insert -> SGD updates) is lowered and compiled on the
current backend from abstract shapes (`jax.eval_shape`: nothing is allocated, not even the replay
buffer), and XLA's memory analysis says what the device must hold: the run state (parameters,
optimizer moments, env states, the replay buffer) plus the program's scratch. FLOPs per env step
are the update's matmul FLOPs (counted from the layer shapes, as `crlkit bench learner` does)
times updates per env step: XLA's own cost analysis counts a loop body once, not per iteration.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from crlkit.bench.learner import update_matmul_flops
from crlkit.checks import check_depth, check_fields
from crlkit.config import option_field
from crlkit.envs.backends import BACKEND_CHOICES
from crlkit.envs.registry import check_backend
from crlkit.train.hostloop import param_count
from crlkit.train.online import PRESETS, init_state, make_setup
from crlkit.train.online.epoch import jitted_epoch

ROW_KEYS = ("depth", "params", "state_gb", "temp_gb", "total_gb", "gflop_per_env_step", "compile_s")


@dataclasses.dataclass(frozen=True)
class BenchPlanConfig:
    """What `crlkit bench plan` sizes (defaults: the paper's online settings, humanoid)."""

    env: str = option_field("humanoid", "Env of the planned run (see: crlkit envs).")
    backend: str = option_field("auto", "Physics backend (as crlkit online).", BACKEND_CHOICES)
    depths: str = option_field("4,64,256,1024", "Comma-separated depths (actor and critic).")
    width: int = option_field(256, "Units per layer.", minimum=1)
    batch_size: int = option_field(512, "SGD minibatch (the paper: 512).", minimum=1)
    num_envs: int = option_field(512, "Parallel envs (the paper: 512).", minimum=1)
    unroll_length: int = option_field(62, "Env steps per env between rounds of updates.", minimum=1)
    updates_per_step: int = option_field(800, "SGD updates per round (the paper: 800).", minimum=1)
    replay_steps_per_env: int = option_field(
        10_000, "Replay capacity per env (the paper: 10k).", minimum=1
    )

    def __post_init__(self) -> None:
        check_fields(self)
        for depth in self.depth_list():
            check_depth("depths", depth)

    def depth_list(self) -> tuple[int, ...]:
        """The depths as integers (a one-line ValueError for a bad list)."""
        try:
            return tuple(int(v) for v in self.depths.split(",") if v.strip())
        except ValueError:
            raise ValueError(f"--depths {self.depths!r} must be comma-separated integers") from None


def _configs(cfg: BenchPlanConfig, depth: int):
    online_base, learner_base = PRESETS["paper"]
    online = dataclasses.replace(
        online_base,
        env=cfg.env,
        backend=cfg.backend,
        num_envs=cfg.num_envs,
        unroll_length=cfg.unroll_length,
        batch_size=cfg.batch_size,
        updates_per_step=cfg.updates_per_step,
        replay_steps_per_env=cfg.replay_steps_per_env,
    )
    network = dataclasses.replace(
        learner_base.network, width=cfg.width, critic_depth=depth, actor_depth=depth
    )
    return online, dataclasses.replace(learner_base, network=network)


def plan_depth(cfg: BenchPlanConfig, depth: int) -> dict[str, Any]:
    """One row: compile the epoch at `depth` from shapes; memory and FLOPs per env step."""
    online, learner = _configs(cfg, depth)
    setup = make_setup(online, learner)
    state = jax.eval_shape(lambda k: init_state(setup, k), jax.random.PRNGKey(0))
    t0 = time.perf_counter()
    compiled = jitted_epoch.lower(setup, state, jnp.int32(0)).compile()
    compile_s = time.perf_counter() - t0
    mem = compiled.memory_analysis()
    state_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state))
    temp = int(getattr(mem, "temp_size_in_bytes", 0)) if mem is not None else 0
    sgd = update_matmul_flops(learner, setup.dims, cfg.batch_size)["model"]
    per_env_step = cfg.updates_per_step * sgd / (cfg.num_envs * cfg.unroll_length)
    return {
        "depth": depth,
        "params": param_count(state.learner),
        "state_gb": state_bytes / 1e9,
        "temp_gb": temp / 1e9,
        "total_gb": (state_bytes + temp) / 1e9,  # outputs alias the donated state
        "gflop_per_env_step": per_env_step / 1e9,
        "compile_s": compile_s,
    }


def run_plan(cfg: BenchPlanConfig, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """A row per depth, logged as it is done (a bad env or backend fails before the header)."""
    check_backend(cfg.env, cfg.backend)
    device = jax.devices()[0]
    log(
        f"{cfg.env}: {cfg.num_envs} envs x unroll {cfg.unroll_length}, batch {cfg.batch_size}, "
        f"{cfg.updates_per_step} updates per round, width {cfg.width}; {device.platform} "
        f"({getattr(device, 'device_kind', '')})"
    )
    log("depth   params   state GB  scratch GB  total GB  GFLOP/env step  compile s")
    rows = []
    for depth in cfg.depth_list():
        row = plan_depth(cfg, depth)
        rows.append(row)
        log(
            f"{row['depth']:>5} {row['params'] / 1e6:>7.1f}M {row['state_gb']:>9.2f} "
            f"{row['temp_gb']:>11.2f} {row['total_gb']:>9.2f} {row['gflop_per_env_step']:>15.2f} "
            f"{row['compile_s']:>10.1f}"
        )
    return rows
