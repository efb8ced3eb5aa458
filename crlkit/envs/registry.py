"""Named env variants and `make(name, backend)`.

One table row per env: body, layout (a maze or an open floor), limits. Underscore spellings
(`ant_big_maze`) are aliases of the hyphenated names.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools

import mujoco

from crlkit.envs import layouts
from crlkit.envs.api import EnvSpec, GoalEnv
from crlkit.envs.backends import BACKENDS, make_backend, resolve_backend
from crlkit.envs.bodies import BODIES, FRAME_SKIP
from crlkit.envs.maze import MazeInfo, add_maze, add_target, limit_wall_pairs
from crlkit.envs.tasks import MazeTasks, OpenFloorTasks
from crlkit.envs.wrappers import AutoReset

PAPER_HEALTHY_Z = (1.0, 2.0)  # the paper's humanoid tasks end when the torso leaves this band


@dataclasses.dataclass(frozen=True)
class EnvEntry:
    """How to build one named env."""

    body: str  # key into bodies.BODIES
    episode_length: int
    success_radius: float
    maze: MazeInfo | None = None
    open_floor: OpenFloorTasks | None = None
    ogbench_env_id: str | None = None
    healthy_z: tuple[float, float] | None = None


def _ogbench_entries() -> dict[str, EnvEntry]:
    entries = {}
    families = {
        "pointmaze": ("point", 1.0, ("arena", "medium", "large", "giant")),
        "antmaze": ("ant", 0.5, ("arena", "medium", "large", "giant")),
        "humanoidmaze": ("humanoid", 0.5, ("medium", "large", "giant")),
    }
    for family, (body, radius, layout_names) in families.items():
        for layout in layout_names:
            length = 1000
            if family == "humanoidmaze":
                length = 4000 if layout == "giant" else 2000
            # OGBench registers no pointmaze/antmaze arena env; the layout is still its own.
            env_id = None if layout == "arena" else f"{family}-{layout}-v0"
            entries[f"{family}-{layout}"] = EnvEntry(
                body=body,
                episode_length=length,
                success_radius=radius,
                maze=layouts.ogbench_maze(layout),
                ogbench_env_id=env_id,
            )
    return entries


def _paper_entries() -> dict[str, EnvEntry]:
    entries = {
        "ant": EnvEntry("ant", 1000, 0.5, open_floor=OpenFloorTasks(10.0, 10.0)),
        "humanoid": EnvEntry(
            "humanoid_upright",
            1000,
            0.5,
            open_floor=OpenFloorTasks(1.0, 5.0, start_noise=0.01),
            healthy_z=PAPER_HEALTHY_Z,
        ),
    }
    for layout in ("u4", "u5", "big", "hardest"):
        maze = layouts.paper_maze(layout, layouts.PAPER_ANT_UNIT)
        entries[f"ant-{layout}-maze"] = EnvEntry("ant", 1000, 0.5, maze=maze)
    for layout in ("u", "big"):
        maze = layouts.paper_maze(layout, layouts.PAPER_HUMANOID_UNIT)
        entries[f"humanoid-{layout}-maze"] = EnvEntry(
            "humanoid_upright", 1000, 0.5, maze=maze, healthy_z=PAPER_HEALTHY_Z
        )
    return entries


REGISTRY: dict[str, EnvEntry] = {**_ogbench_entries(), **_paper_entries()}


def list_envs() -> list[str]:
    """Every registered env name, in registry order."""
    return list(REGISTRY)


def canonical_name(name: str) -> str:
    """The registered name for `name` (underscores accepted); one-line ValueError if unknown."""
    if not isinstance(name, str):
        raise ValueError(f"env name must be a string, got {name!r}")
    canon = name.strip().lower().replace("_", "-")
    if canon in REGISTRY:
        return canon
    close = difflib.get_close_matches(canon, list(REGISTRY), n=1, cutoff=0.0)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown env {name!r}{hint} see: crlkit envs")


@functools.cache
def build_model(name: str) -> mujoco.MjModel:
    """The compiled MuJoCo model of a registered env: ogbench's body asset + maze + target."""
    entry = REGISTRY[canonical_name(name)]
    spec = BODIES[entry.body].load_spec()
    add_target(spec)
    if entry.maze is None:
        return spec.compile()
    add_maze(spec, entry.maze)
    limit_wall_pairs(spec, spec.compile())
    return spec.compile()


def make_spec(name: str, backend: str = "auto") -> EnvSpec:
    """The EnvSpec of a registered env (builds the model, not the physics backend)."""
    canon = canonical_name(name)
    entry = REGISTRY[canon]
    backend_name = resolve_backend(backend)
    body = BODIES[entry.body]
    model = build_model(canon)
    return EnvSpec(
        name=canon,
        state_dim=body.state_dim(model),
        goal_dim=2,
        goal_indices=(0, 1),
        action_dim=body.action_dim,
        episode_length=entry.episode_length,
        success_radius=entry.success_radius,
        backend=backend_name,
        ogbench_env_id=entry.ogbench_env_id,
        body=body.name,
        maze=entry.maze,
        num_tasks=len(entry.maze.tasks) if entry.maze is not None else 0,
        healthy_z=entry.healthy_z,
        control_dt=float(model.opt.timestep) * FRAME_SKIP,
    )


def make(name: str, backend: str = "auto", episode_length: int | None = None) -> AutoReset:
    """A registered env with episode limit and auto-reset (`.unwrapped` for the bare env).

    Args:
      name: a name from `list_envs()` (underscores accepted: `ant_big_maze`).
      backend: 'auto' (native MuJoCo on CPU, mjx on GPU), 'mjx', 'native' or 'warp'.
      episode_length: overrides the registered episode length (None: keep it).
    """
    spec = make_spec(name, backend)
    entry = REGISTRY[spec.name]
    model = build_model(spec.name)
    tasks = MazeTasks(entry.maze) if entry.maze is not None else entry.open_floor
    physics = make_backend(spec.backend, model, FRAME_SKIP)
    env = GoalEnv(spec, BODIES[entry.body], tasks, physics, model)
    return AutoReset(env, episode_length)


def available_backends() -> list[str]:
    """Backends whose modules and dependencies are installed here ('auto' not included)."""
    import importlib.util

    needs = {"mjx": ("mujoco.mjx",), "native": ("mujoco",), "warp": ("warp", "mujoco_warp")}
    found = []
    for name in BACKENDS:
        module = BACKENDS[name].split(":")[0]
        deps = (module, *needs.get(name, ()))
        if all(importlib.util.find_spec(d) is not None for d in deps):
            found.append(name)
    return found
