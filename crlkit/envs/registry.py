"""Named env variants and `make(name, backend)`.

One table row per env: body, layout (a maze or an open floor), limits. Underscore spellings
(`ant_big_maze`) are aliases of the hyphenated names.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools

import mujoco

from crlkit.envs import arm, layouts
from crlkit.envs.api import EnvSpec, GoalEnv
from crlkit.envs.backends import BACKENDS, make_backend, resolve_backend
from crlkit.envs.bodies import BODIES as OGBENCH_BODIES
from crlkit.envs.maze import MazeInfo, add_maze, limit_wall_pairs
from crlkit.envs.paper_bodies import PAPER_BODIES
from crlkit.envs.tasks import MazeTasks, OpenFloorTasks
from crlkit.envs.wrappers import AutoReset

PAPER_HUMANOID_HEALTHY_Z = (1.0, 2.0)  # the paper's humanoid ends when the torso leaves this band
PAPER_ANT_HEALTHY_Z = (0.2, 1.0)  # the paper's ant: the same rule, its own band
PAPER_EASY_RADIUS = 2.0  # the paper's humanoid also reports "easy success" within 2.0 (3-D)
OGBENCH_BACKENDS = ("mjx", "native", "warp")
PAPER_BACKENDS = ("spring", "mjx", "native", "warp")


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
    easy_success_radius: float | None = None


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
    ant = {"body": "paper_ant", "episode_length": 1000, "success_radius": 0.5}
    ant["healthy_z"] = PAPER_ANT_HEALTHY_Z
    humanoid = {"body": "paper_humanoid", "episode_length": 1000, "success_radius": 0.5}
    humanoid.update(healthy_z=PAPER_HUMANOID_HEALTHY_Z, easy_success_radius=PAPER_EASY_RADIUS)
    entries = {
        "ant": EnvEntry(**ant, open_floor=OpenFloorTasks(10.0, 10.0)),
        "humanoid": EnvEntry(**humanoid, open_floor=OpenFloorTasks(1.0, 5.0, start_noise=0.0)),
    }
    # name -> layout; `*-maze-eval` are the paper's evaluation variants of the training mazes.
    ant_mazes = {f"ant-{m}-maze": m for m in ("u4", "u5", "big", "hardest")}
    ant_mazes.update({f"ant-{m}-maze-eval": f"{m}-eval" for m in ("u4", "u5", "big")})
    for name, layout in ant_mazes.items():
        entries[name] = EnvEntry(**ant, maze=layouts.paper_maze(layout, layouts.PAPER_ANT_UNIT))
    humanoid_mazes = {"humanoid-u-maze": "u", "humanoid-big-maze": "big"}
    humanoid_mazes.update({"humanoid-u-maze-eval": "u-eval"})
    humanoid_mazes.update({"humanoid-big-maze-eval": "humanoid-big-eval"})
    for name, layout in humanoid_mazes.items():
        unit, noise = layouts.PAPER_HUMANOID_UNIT, layouts.PAPER_HUMANOID_START_NOISE
        entries[name] = EnvEntry(**humanoid, maze=layouts.paper_maze(layout, unit, noise))
    return entries


def _arm_entries() -> dict[str, EnvEntry]:
    """The paper's Franka Panda tasks; built by crlkit/envs/arm.py (`make`/`make_spec` defer)."""
    return {
        name: EnvEntry(arm.BODY, arm.EPISODE_LENGTH, arm.SUCCESS_RADIUS)
        for name in arm.ARM_TASKS
    }


BODIES = {**OGBENCH_BODIES, **PAPER_BODIES}
REGISTRY: dict[str, EnvEntry] = {**_ogbench_entries(), **_paper_entries(), **_arm_entries()}


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
    """The compiled MuJoCo model of a registered env: the body's model + maze walls."""
    if canonical_name(name) in arm.ARM_TASKS:
        return arm.build_model(canonical_name(name))
    entry = REGISTRY[canonical_name(name)]
    spec = BODIES[entry.body].build_spec(maze=entry.maze is not None)
    if entry.maze is None:
        return spec.compile()
    add_maze(spec, entry.maze)
    limit_wall_pairs(spec, spec.compile())
    return spec.compile()


def env_backends(name: str) -> tuple[str, ...]:
    """The physics backends a registered env can run on ('auto' not included)."""
    if canonical_name(name) in arm.ARM_TASKS:
        return OGBENCH_BACKENDS
    body = BODIES[REGISTRY[canonical_name(name)].body]
    return PAPER_BACKENDS if body.family == "paper" else OGBENCH_BACKENDS


def check_backend(name: str, backend: str) -> str:
    """The concrete backend for env `name`; one-line ValueError naming the valid choices."""
    valid = env_backends(name)
    if backend != "auto" and backend not in valid:
        raise ValueError(
            f"unknown backend {backend!r} for env {canonical_name(name)!r}; "
            f"valid: {', '.join(('auto', *valid))}"
        )
    if backend == "spring" and "spring" not in available_backends():
        raise ValueError(
            "backend 'spring' needs the brax package: pip install 'crlkit[brax]' "
            f"(installed: {', '.join(('auto', *available_backends()))})"
        )
    return resolve_backend(backend)


def make_spec(name: str, backend: str = "auto") -> EnvSpec:
    """The EnvSpec of a registered env (builds the model, not the physics backend)."""
    canon = canonical_name(name)
    if canon in arm.ARM_TASKS:
        return arm.make_spec(canon, check_backend(canon, backend))
    entry = REGISTRY[canon]
    backend_name = check_backend(canon, backend)
    model = build_model(canon)
    body = BODIES[entry.body]
    return EnvSpec(
        name=canon,
        state_dim=body.state_dim(model),
        goal_dim=len(body.goal_indices),
        goal_indices=body.goal_indices,
        action_dim=body.action_dim,
        episode_length=entry.episode_length,
        success_radius=entry.success_radius,
        backend=backend_name,
        ogbench_env_id=entry.ogbench_env_id,
        body=body.name,
        maze=entry.maze,
        num_tasks=len(entry.maze.tasks) if entry.maze is not None else 0,
        healthy_z=entry.healthy_z,
        control_dt=round(float(model.opt.timestep) * body.frame_skip, 9),
        family=body.family,
        easy_success_radius=entry.easy_success_radius,
        backends=env_backends(canon),
    )


def make(name: str, backend: str = "auto", episode_length: int | None = None) -> AutoReset:
    """A registered env with episode limit and auto-reset (`.unwrapped` for the bare env).

    Args:
      name: a name from `list_envs()` (underscores accepted: `ant_big_maze`).
      backend: 'auto' (native MuJoCo on CPU, mjx on GPU), 'mjx', 'native', 'warp', or 'spring'
        (Brax's spring pipeline; the paper's envs only; needs `pip install 'crlkit[brax]'`).
      episode_length: overrides the registered episode length (None: keep it).
    """
    if canonical_name(name) in arm.ARM_TASKS:
        return arm.make(canonical_name(name), check_backend(name, backend), episode_length)
    spec = make_spec(name, backend)
    entry = REGISTRY[spec.name]
    model = build_model(spec.name)
    body = BODIES[entry.body].with_model(model)
    tasks = MazeTasks(entry.maze) if entry.maze is not None else entry.open_floor
    physics = make_backend(spec.backend, model, body.frame_skip)
    env = GoalEnv(spec, body, tasks, physics, model)
    return AutoReset(env, episode_length)


def check_same_family(train_env: str, eval_env: str) -> str:
    """The canonical name of `eval_env` when its body and sizes match `train_env`'s (an agent
    trained on one can be evaluated on the other); else a one-line ValueError with the choices."""
    train, other = canonical_name(train_env), canonical_name(eval_env)
    same = [n for n in REGISTRY if REGISTRY[n].body == REGISTRY[train].body]
    if REGISTRY[other].body != REGISTRY[train].body:
        raise ValueError(
            f"eval env {eval_env!r} has another body than {train!r}; valid: {', '.join(same)}"
        )
    return other


def available_backends() -> list[str]:
    """Backends whose modules and dependencies are installed here ('auto' not included)."""
    import importlib.util

    needs = {
        "mjx": ("mujoco.mjx",), "native": ("mujoco",), "warp": ("warp", "mujoco_warp"),
        "spring": ("brax",),
    }  # fmt: skip
    found = []
    for name in BACKENDS:
        module = BACKENDS[name].split(":")[0]
        deps = (*needs.get(name, ()), module)
        if all(importlib.util.find_spec(d) is not None for d in deps):
            found.append(name)
    return found
