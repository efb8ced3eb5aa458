"""Value maps: what a run's critic thinks of every place in the maze, for one goal.

For each point of a grid over the floor (the free cells of a maze, a square around start and goal
on an open floor) the body is put there in the env's reset pose (only its xy replaced), and the
map holds Q(s, a, g) = f(phi(s, a), psi(g)) (min over an ensemble, as the actor sees it) for

- the actor's own deterministic action a = pi(s, g), and
- the best of that action and `SAMPLED_ACTIONS` actions drawn uniformly from [-1, 1]^A.

Goals: `--goal X,Y`, OGBench task k (`--task k`), or a fresh goal drawn from the seed. An offline
run trained on whole goal observations gets the goal observation its evaluator builds (the reset
pose moved to the goal). One deterministic rollout from a start toward the same goal is drawn on
top. Arm envs have no floor map: their goal is a cube position in 3-D.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from crlkit.files import atomic_path
from crlkit.render.outfile import RenderError
from crlkit.render.rollout import BODIES, Episode, goal_observation_of, record_episodes
from crlkit.render.trajmap import FAILURE_COLOR, SUCCESS_COLOR, _draw_walls

SAMPLED_ACTIONS = 8  # uniform actions per point for the "max over actions" map
POINTS_PER_CELL = 4  # grid points along each side of a maze cell
OPEN_FLOOR_POINTS = 48  # grid points along each side of an open floor's square
OPEN_FLOOR_MARGIN = 2.0  # metres around the start and goal on an open floor


@dataclasses.dataclass(frozen=True)
class ValueMap:
    """Energies over a floor grid for one goal; NaN at wall points.

    Attributes:
      xs, ys: [nx], [ny] grid coordinates (world metres); value [i, j] sits at (xs[j], ys[i]).
      actor_q: [ny, nx] Q of the actor's own action.
      max_q: [ny, nx] max of Q over the actor's action and SAMPLED_ACTIONS uniform actions.
      goal_xy: [2] the goal's floor position.
      episode: one deterministic rollout toward the goal.
      energy: the critic's energy name (config `energy`), scaled by 1/sqrt(repr_dim) if `scaled`.
    """

    spec: Any
    run_dir: Path
    step: int
    regime: str
    xs: np.ndarray
    ys: np.ndarray
    actor_q: np.ndarray
    max_q: np.ndarray
    goal_xy: np.ndarray
    episode: Episode
    energy: str
    scaled: bool

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """(xmin, xmax, ymin, ymax) of the grid's cells (for imshow)."""
        dx, dy = _step(self.xs), _step(self.ys)
        return (
            self.xs[0] - dx / 2,
            self.xs[-1] + dx / 2,
            self.ys[0] - dy / 2,
            self.ys[-1] + dy / 2,
        )


def _step(values: np.ndarray) -> float:
    return float(values[1] - values[0]) if len(values) > 1 else 1.0


def check_value_env(spec) -> None:
    """RenderError unless the env has a floor to map (a point, ant or humanoid body)."""
    if spec.body not in BODIES:
        raise RenderError(
            f"env {spec.name!r} ({spec.body} body) has no planar map for --kind value (its goal "
            f"is a 3-D cube position); valid: envs with a {', '.join(BODIES)} body (crlkit envs)"
        )


def check_goal(spec, goal_xy) -> None:
    """RenderError unless `goal_xy` lies on a free cell of the env's maze (any xy off mazes)."""
    maze = spec.maze
    if maze is None:
        return
    if not bool(maze.is_free(jnp.asarray(goal_xy, jnp.float32))):
        rows, cols = maze.array.shape
        half, (ox, oy) = maze.unit / 2, maze.offset
        x_range = f"{-ox - half:g}..{(cols - 1) * maze.unit - ox + half:g}"
        y_range = f"{-oy - half:g}..{(rows - 1) * maze.unit - oy + half:g}"
        raise RenderError(
            f"goal ({goal_xy[0]:g}, {goal_xy[1]:g}) is not on a free cell of {spec.name!r}; "
            f"valid: a non-wall cell within x {x_range}, y {y_range}"
        )


def compute_value_map(
    run_dir: str | os.PathLike,
    goal_xy: tuple[float, float] | None = None,
    task: int | None = None,
    seed: int = 0,
    step: int | None = None,
) -> ValueMap:
    """The value map of `run_dir`'s newest (or `step`) checkpoint; RenderError for bad input.

    The goal is `goal_xy`, else OGBench task `task`'s goal, else a goal drawn from `seed`; runs
    mapped with the same arguments share the goal, the reference pose and the rollout's start.
    """
    from crlkit.render.outputs import check_task
    from crlkit.render.policy import load_run_critic, load_run_policy

    if goal_xy is not None and task is not None:
        raise RenderError("give --goal or --task, not both")
    policy = load_run_policy(run_dir, step, check_env=check_value_env)
    spec, bare = policy.env.spec, policy.env.unwrapped
    check_task(spec, task)
    if goal_xy is not None:
        check_goal(spec, goal_xy)
    cfg, critic = load_run_critic(policy)
    k_rollout, k_actions = jax.random.split(jax.random.PRNGKey(seed))
    # The key record_episodes gives its one episode: the rollout starts from the reference
    # state, and without --goal heads for the goal that reset drew with it.
    (k_start,) = jax.random.split(k_rollout, 1)
    start = bare.reset(k_start) if task is None else bare.reset_to_task(k_start, task)
    goal = start.goal[:2] if goal_xy is None else jnp.asarray(goal_xy, jnp.float32)
    (episode,) = record_episodes(
        policy.env,
        policy.nets,
        policy.params,
        k_rollout,
        1,
        task,
        policy.goal_observation,
        goal_xy=goal,
    )
    framed = np.concatenate([np.asarray(bare.body.xy(start.physics))[None], episode.xy])
    xs, ys, points, free = grid_points(spec, framed, np.asarray(goal))
    energies = jax.jit(functools.partial(_energies, policy, cfg))
    q = energies(critic, start, goal, jnp.asarray(points[free]), k_actions)
    actor_q, max_q = (_on_grid(np.asarray(v), free, len(ys), len(xs)) for v in q)
    return ValueMap(
        spec,
        policy.run_dir,
        policy.step,
        policy.regime,
        xs,
        ys,
        actor_q,
        max_q,
        np.asarray(goal, np.float32),
        episode,
        cfg.energy,
        cfg.scale_energy,
    )


def grid_points(
    spec, framed: np.ndarray, goal_xy: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(xs, ys, points [ny * nx, 2] row-major, free [ny * nx] bool) of the map's grid: a maze's
    free cells, or on an open floor a square around the goal and the `framed` points [K, 2]."""
    maze = spec.maze
    if maze is not None:
        rows, cols = maze.array.shape
        sub = (np.arange(POINTS_PER_CELL) + 0.5) / POINTS_PER_CELL - 0.5
        xs = (np.arange(cols)[:, None] + sub[None, :]).ravel() * maze.unit - maze.offset[0]
        ys = (np.arange(rows)[:, None] + sub[None, :]).ravel() * maze.unit - maze.offset[1]
    else:
        ends = np.concatenate([framed, goal_xy[None]])
        centre = (ends.min(axis=0) + ends.max(axis=0)) / 2
        half = float(np.max(np.abs(ends - centre))) + OPEN_FLOOR_MARGIN
        xs = np.linspace(centre[0] - half, centre[0] + half, OPEN_FLOOR_POINTS)
        ys = np.linspace(centre[1] - half, centre[1] + half, OPEN_FLOOR_POINTS)
    gx, gy = np.meshgrid(xs.astype(np.float32), ys.astype(np.float32))
    points = np.stack([gx.ravel(), gy.ravel()], axis=-1)
    free = np.ones(len(points), bool) if maze is None else np.asarray(maze.is_free(points))
    return xs, ys, points, free


def _energies(policy, cfg, critic, start, goal_xy, points, key) -> tuple[jax.Array, jax.Array]:
    """Q of the actor's action and the max over sampled actions, at each of `points` [N, 2]."""
    from crlkit import learner
    from crlkit.envs.bodies import body_ids

    bare, spec = policy.env.unwrapped, policy.env.spec
    start = start.replace(goal=bare.goal_of_xy(goal_xy))
    goal = goal_observation_of(bare, start) if policy.goal_observation else start.goal
    ids = body_ids(bare.mj_model)

    def state_at(xy: jax.Array) -> jax.Array:
        qpos = bare.body.place(start.physics.qpos, xy, goal_xy)
        physics = bare.backend.init(qpos, start.physics.qvel)
        return bare.body.observe(physics, ids)[: spec.state_dim]

    states = jax.vmap(state_at)(points)
    goals = jnp.broadcast_to(goal, (len(points), goal.shape[-1]))
    q = lambda a: learner.q_value(policy.nets, cfg, critic, states, a, goals)
    action = learner.act(policy.nets, policy.params, states, goals, key, deterministic=True)
    actor_q = q(action)
    sampled = jax.random.uniform(key, (SAMPLED_ACTIONS, *action.shape), minval=-1.0, maxval=1.0)
    return actor_q, jnp.maximum(actor_q, jnp.max(jax.lax.map(q, sampled), axis=0))


def _on_grid(values: np.ndarray, free: np.ndarray, ny: int, nx: int) -> np.ndarray:
    grid = np.full(ny * nx, np.nan, np.float32)
    grid[free] = values
    return grid.reshape(ny, nx)


# ---- drawing ----------------------------------------------------------------------------------


def energy_label(vm: ValueMap) -> str:
    """Colour-bar label: the energy's formula (its units)."""
    forms = {
        "l2": "-||phi - psi||",
        "l2_squared": "-||phi - psi||^2",
        "l1": "-||phi - psi||_1",
        "dot": "phi . psi",
        "cosine": "cos(phi, psi)",
        "mrn": "-(||phi_s - psi_s|| + max(0, phi_a - psi_a))",
    }
    form = forms.get(vm.energy, vm.energy)
    return f"energy Q(s, a, g) = {form}" + (" / sqrt(d)" if vm.scaled else "")


def plot_value_map(ax, vm: ValueMap, which: str = "actor", limits=None):
    """Draws the heat map (`which`: actor or max) under the walls, the rollout and the goal on the
    matplotlib axes `ax`; returns the image (for a colour bar)."""
    values = vm.actor_q if which == "actor" else vm.max_q
    vmin, vmax = limits if limits is not None else (np.nanmin(values), np.nanmax(values))
    image = ax.imshow(
        values,
        origin="lower",
        extent=vm.extent,
        cmap="viridis",
        vmin=vmin,
        vmax=vmax,
        interpolation="nearest",
        zorder=0,
    )
    if vm.spec.maze is not None:
        _draw_walls(ax, vm.spec.maze)
    ep = vm.episode
    color = SUCCESS_COLOR if ep.success else FAILURE_COLOR
    ax.plot(ep.xy[:, 0], ep.xy[:, 1], color="white", lw=2.4, zorder=3)
    ax.plot(ep.xy[:, 0], ep.xy[:, 1], color=color, lw=1.2, zorder=3)
    ax.plot(*ep.xy[0], "o", color=color, ms=6, mec="black", mew=0.8, zorder=4)
    ax.plot(*vm.goal_xy, "*", color="white", ms=16, mec="black", mew=1.0, zorder=5)
    xmin, xmax, ymin, ymax = vm.extent
    ax.set_xlim(xmin, xmax)
    ax.set_ylim(ymin, ymax)
    ax.set_aspect("equal")
    ax.tick_params(labelsize=7)  # metres: what --goal X,Y takes
    return image


def write_value_png(path: str | os.PathLike, vm: ValueMap) -> Path:
    """Writes the two maps (actor's action, max over actions) side by side to `path` atomically."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    rows, cols = vm.actor_q.shape
    fig = Figure(figsize=(11.0, max(3.6, 5.0 * rows / cols + 0.8)), dpi=110, layout="constrained")
    axes = fig.subplots(1, 2)
    both = np.stack([vm.actor_q, vm.max_q])
    limits = (float(np.nanmin(both)), float(np.nanmax(both)))
    image = plot_value_map(axes[0], vm, "actor", limits)
    plot_value_map(axes[1], vm, "max", limits)
    axes[0].set_title("Q of the actor's own action pi(s, g)", fontsize=9)
    axes[1].set_title(f"max Q over pi(s, g) and {SAMPLED_ACTIONS} uniform actions", fontsize=9)
    fig.colorbar(image, ax=axes, label=energy_label(vm), shrink=0.85)
    reached = "reached" if vm.episode.success else "missed"
    fig.suptitle(
        f"{vm.spec.name}, {vm.regime} run, step {vm.step:,}: value of each place for the goal "
        f"({vm.goal_xy[0]:.1f}, {vm.goal_xy[1]:.1f}); rollout {reached}",
        fontsize=10,
    )
    axes[1].legend(
        handles=[
            Line2D(
                [],
                [],
                color=SUCCESS_COLOR if vm.episode.success else FAILURE_COLOR,
                label=f"rollout ({reached})",
            ),
            Line2D([], [], ls="", marker="o", color="gray", label="start"),
            Line2D([], [], ls="", marker="*", color="white", mec="black", ms=11, label="goal"),
        ],
        loc="upper right",
        fontsize=7,
        framealpha=0.8,
    )
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    with atomic_path(Path(path)) as temp:
        temp.write_bytes(buffer.getvalue())
    return Path(path)
