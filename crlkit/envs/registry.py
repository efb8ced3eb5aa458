"""Named envs: `make(name, backend)`, `make_spec`, and the table they read.

`REGISTRY` maps each name to an `EnvEntry` (as MuJoCo Playground's registry maps a name to its
default config and factory): the entry's `EnvDefaults` (episode length, success radius, family,
backends, ...) and its factory, which builds the model, the spec and the bare env. Every function
below reads entries only; adding an env is one `register` call (docs/envs.md "Adding an env").
Underscore spellings (`ant_big_maze`) are aliases of the hyphenated names.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools

import mujoco

from crlkit.envs import arm, layouts
from crlkit.envs.api import EnvDefaults, EnvEntry, EnvSpec, GoalEnv
from crlkit.envs.backends import BACKENDS, make_backend, resolve_backend
from crlkit.envs.bodies import BODIES as OGBENCH_BODIES
from crlkit.envs.bodies import Body
from crlkit.envs.maze import MazeInfo, add_maze, limit_wall_pairs
from crlkit.envs.paper_bodies import PAPER_BODIES
from crlkit.envs.tasks import MazeTasks, OpenFloorTasks
from crlkit.envs.wrappers import AutoReset

PAPER_HUMANOID_HEALTHY_Z = (1.0, 2.0)  # the paper's humanoid ends when the torso leaves this band
PAPER_ANT_HEALTHY_Z = (0.2, 1.0)  # the paper's ant: the same rule, its own band
PAPER_EASY_RADIUS = 2.0  # the paper's humanoid also reports "easy success" within 2.0 (3-D)
OGBENCH_BACKENDS = ("mjx", "native", "warp")
PAPER_BACKENDS = ("spring", "mjx", "native", "warp")
FAMILY_BACKENDS = {"ogbench": OGBENCH_BACKENDS, "paper": PAPER_BACKENDS}
BODIES: dict[str, Body] = {**OGBENCH_BODIES, **PAPER_BODIES}


@functools.cache
def _compile(body: Body, maze: MazeInfo | None) -> mujoco.MjModel:
    """A body's compiled model, with the maze's walls when there is one (one per process)."""
    spec = body.build_spec(maze=maze is not None)
    if maze is None:
        return spec.compile()
    add_maze(spec, maze)
    limit_wall_pairs(spec, spec.compile())
    return spec.compile()


@dataclasses.dataclass(frozen=True)
class Locomotion:
    """Factory of a `GoalEnv`: a body (bodies.py, paper_bodies.py) and where its episodes start
    and its goals are (`MazeTasks(maze)` or `OpenFloorTasks`)."""

    body: Body
    tasks: MazeTasks | OpenFloorTasks

    @property
    def maze(self) -> MazeInfo | None:
        return self.tasks.maze if isinstance(self.tasks, MazeTasks) else None

    def model(self) -> mujoco.MjModel:
        return _compile(self.body, self.maze)

    def spec(self, name: str, defaults: EnvDefaults, backend: str) -> EnvSpec:
        model, body, maze = self.model(), self.body, self.maze
        return EnvSpec(
            name=name,
            state_dim=body.state_dim(model),
            goal_dim=len(body.goal_indices),
            goal_indices=body.goal_indices,
            action_dim=body.action_dim,
            episode_length=defaults.episode_length,
            success_radius=defaults.success_radius,
            backend=backend,
            ogbench_env_id=defaults.ogbench_env_id,
            body=body.name,
            maze=maze,
            num_tasks=len(maze.tasks) if maze is not None else 0,
            healthy_z=defaults.healthy_z,
            control_dt=round(float(model.opt.timestep) * body.frame_skip, 9),
            family=defaults.family,
            easy_success_radius=defaults.easy_success_radius,
            backends=defaults.backends,
        )

    def env(self, spec: EnvSpec) -> GoalEnv:
        model = self.model()
        body = self.body.with_model(model)
        physics = make_backend(spec.backend, model, body.frame_skip)
        return GoalEnv(spec, body, self.tasks, physics, model)


def locomotion(
    body: str,
    *,
    maze: MazeInfo | None = None,
    open_floor: OpenFloorTasks | None = None,
    episode_length: int,
    success_radius: float,
    **defaults,
) -> EnvEntry:
    """An entry for a body of `BODIES` in a maze or on an open floor (exactly one of them).

    The family and backends default to the body's; further `EnvDefaults` fields (healthy_z,
    easy_success_radius, ogbench_env_id) as keywords.
    """
    if (maze is None) == (open_floor is None):
        raise ValueError("a locomotion env needs exactly one of maze= and open_floor=")
    robot = BODIES[body]
    defaults.setdefault("family", robot.family)
    defaults.setdefault("backends", FAMILY_BACKENDS[defaults["family"]])
    tasks = MazeTasks(maze) if maze is not None else open_floor
    return EnvEntry(
        EnvDefaults(episode_length, success_radius, **defaults), Locomotion(robot, tasks)
    )


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
            entries[f"{family}-{layout}"] = locomotion(
                body,
                maze=layouts.ogbench_maze(layout),
                episode_length=length,
                success_radius=radius,
                ogbench_env_id=env_id,
            )
    return entries


def _paper_entries() -> dict[str, EnvEntry]:
    ant = {"episode_length": 1000, "success_radius": 0.5, "healthy_z": PAPER_ANT_HEALTHY_Z}
    humanoid = {"episode_length": 1000, "success_radius": 0.5}
    humanoid.update(healthy_z=PAPER_HUMANOID_HEALTHY_Z, easy_success_radius=PAPER_EASY_RADIUS)
    entries = {
        "ant": locomotion("paper_ant", open_floor=OpenFloorTasks(10.0, 10.0), **ant),
        "humanoid": locomotion(
            "paper_humanoid", open_floor=OpenFloorTasks(1.0, 5.0, start_noise=0.0), **humanoid
        ),
    }
    # name -> layout; `*-maze-eval` are the paper's evaluation variants of the training mazes.
    ant_mazes = {f"ant-{m}-maze": m for m in ("u4", "u5", "big", "hardest")}
    ant_mazes.update({f"ant-{m}-maze-eval": f"{m}-eval" for m in ("u4", "u5", "big")})
    for name, layout in ant_mazes.items():
        maze = layouts.paper_maze(layout, layouts.PAPER_ANT_UNIT)
        entries[name] = locomotion("paper_ant", maze=maze, **ant)
    humanoid_mazes = {"humanoid-u-maze": "u", "humanoid-big-maze": "big"}
    humanoid_mazes.update({"humanoid-u-maze-eval": "u-eval"})
    humanoid_mazes.update({"humanoid-big-maze-eval": "humanoid-big-eval"})
    for name, layout in humanoid_mazes.items():
        unit, noise = layouts.PAPER_HUMANOID_UNIT, layouts.PAPER_HUMANOID_START_NOISE
        maze = layouts.paper_maze(layout, unit, noise)
        entries[name] = locomotion("paper_humanoid", maze=maze, **humanoid)
    return entries


REGISTRY: dict[str, EnvEntry] = {**_ogbench_entries(), **_paper_entries(), **arm.ENTRIES}


def register(name: str, entry: EnvEntry) -> str:
    """Adds `entry` under `name` (lower case, hyphens; underscores become hyphens); returns the
    registered name. One-line ValueError if the name is taken."""
    canon = name.strip().lower().replace("_", "-")
    if not canon or canon in REGISTRY:
        raise ValueError(f"env name {name!r} is empty or already registered; see: crlkit envs")
    REGISTRY[canon] = entry
    return canon


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


def build_model(name: str) -> mujoco.MjModel:
    """The compiled MuJoCo model of a registered env (cached by its factory)."""
    return REGISTRY[canonical_name(name)].factory.model()


def env_backends(name: str) -> tuple[str, ...]:
    """The physics backends a registered env can run on ('auto' not included)."""
    return REGISTRY[canonical_name(name)].defaults.backends


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
    """The EnvSpec of a registered env (no physics backend is built; the arm's needs no model)."""
    canon = canonical_name(name)
    entry = REGISTRY[canon]
    return entry.factory.spec(canon, entry.defaults, check_backend(canon, backend))


def make(name: str, backend: str = "auto", episode_length: int | None = None) -> AutoReset:
    """A registered env with episode limit and auto-reset (`.unwrapped` for the bare env).

    Args:
      name: a name from `list_envs()` (underscores accepted: `ant_big_maze`).
      backend: 'auto' (native MuJoCo on CPU, mjx on GPU), 'mjx', 'native', 'warp', or 'spring'
        (Brax's spring pipeline; the paper's envs only; needs `pip install 'crlkit[brax]'`).
      episode_length: overrides the registered episode length (None: keep it).
    """
    spec = make_spec(name, backend)
    return AutoReset(REGISTRY[spec.name].factory.env(spec), episode_length)


def check_same_family(train_env: str, eval_env: str) -> str:
    """The canonical name of `eval_env` when its body and sizes match `train_env`'s (an agent
    trained on one can be evaluated on the other); else a one-line ValueError with the choices."""
    train, other = canonical_name(train_env), canonical_name(eval_env)
    body = REGISTRY[train].factory.body
    same = [n for n in REGISTRY if REGISTRY[n].factory.body == body]
    if REGISTRY[other].factory.body != body:
        raise ValueError(
            f"eval env {eval_env!r} has another body than {train!r}; valid: {', '.join(same)}"
        )
    return other


def available_backends() -> list[str]:
    """Backends whose modules and dependencies are installed here ('auto' not included)."""
    import importlib.util

    needs = {
        "mjx": ("mujoco.mjx",),
        "native": ("mujoco",),
        "warp": ("warp", "mujoco_warp"),
        "spring": ("brax",),
    }
    found = []
    for name in BACKENDS:
        module = BACKENDS[name].split(":")[0]
        deps = (*needs.get(name, ()), module)
        if all(importlib.util.find_spec(d) is not None for d in deps):
            found.append(name)
    return found
