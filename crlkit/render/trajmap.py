"""Top-down trajectory maps (matplotlib only, no OpenGL): maze walls, each episode's path from
its start (circle) to its goal (star), green when the episode reached the goal, red otherwise."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from crlkit.files import atomic_path
from crlkit.render.rollout import Episode

SUCCESS_COLOR = "#2ca02c"
FAILURE_COLOR = "#d62728"
WALL_COLOR = "#7f7f7f"


def plot_trajectory_map(ax, spec, episodes: Sequence[Episode], title: str | None = None) -> list:
    """Draws `episodes` over the maze of `spec` (an EnvSpec) on the matplotlib axes `ax`.

    Returns the path lines, one per episode in order (callers and tests count them).
    """
    from matplotlib.lines import Line2D

    bounds = _draw_walls(ax, spec.maze) if spec.maze is not None else None
    lines = []
    for ep in episodes:
        color = SUCCESS_COLOR if ep.success else FAILURE_COLOR
        (line,) = ax.plot(ep.xy[:, 0], ep.xy[:, 1], color=color, lw=1.2, alpha=0.85, zorder=3)
        lines.append(line)
        ax.plot(*ep.xy[0], "o", color=color, ms=5, mec="black", mew=0.6, zorder=4)
        ax.plot(*ep.goal_xy, "*", color=color, ms=11, mec="black", mew=0.6, zorder=4)
    if bounds is None:
        bounds = _open_floor_bounds(episodes, spec.success_radius)
    ax.set_xlim(bounds[0], bounds[1])
    ax.set_ylim(bounds[2], bounds[3])
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    reached = sum(ep.success for ep in episodes)
    ax.set_title(title if title is not None else f"{spec.name}: {reached}/{len(episodes)} reached")
    ax.legend(
        handles=[
            Line2D([], [], color=SUCCESS_COLOR, label="reached"),
            Line2D([], [], color=FAILURE_COLOR, label="missed"),
            Line2D([], [], ls="", marker="o", color="gray", label="start"),
            Line2D([], [], ls="", marker="*", color="gray", ms=10, label="goal"),
        ],
        loc="upper right", fontsize=7, framealpha=0.8,
    )
    return lines


def _draw_walls(ax, maze) -> tuple[float, float, float, float]:
    """Filled squares for the wall cells; returns the maze's (xmin, xmax, ymin, ymax)."""
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Rectangle

    unit, (ox, oy) = maze.unit, maze.offset
    grid = maze.array
    walls = [
        Rectangle((j * unit - ox - unit / 2, i * unit - oy - unit / 2), unit, unit)
        for i, j in np.argwhere(grid == 1)
    ]
    ax.add_collection(PatchCollection(walls, facecolor=WALL_COLOR, edgecolor="none", zorder=1))
    rows, cols = grid.shape
    return (-ox - unit / 2, (cols - 0.5) * unit - ox, -oy - unit / 2, (rows - 0.5) * unit - oy)


def _open_floor_bounds(episodes: Sequence[Episode], radius: float):
    """A square around every path and goal, with a margin."""
    points = np.concatenate([np.concatenate([ep.xy, ep.goal_xy[None]]) for ep in episodes])
    lo, hi = points.min(axis=0), points.max(axis=0)
    centre, half = (lo + hi) / 2, max(float(np.max(hi - lo)) / 2, 1.0) + 2 * radius
    return centre[0] - half, centre[0] + half, centre[1] - half, centre[1] + half


def write_trajectory_png(
    path: Path, spec, episodes: Sequence[Episode], title: str | None = None
) -> Path:
    """Writes the trajectory map of `episodes` to `path` (.png) atomically; returns `path`."""
    from matplotlib.figure import Figure

    rows, cols = spec.maze.array.shape if spec.maze is not None else (1, 1)
    aspect = rows / cols
    fig = Figure(figsize=(6.0, max(3.0, 6.0 * aspect)), dpi=120, layout="constrained")
    plot_trajectory_map(fig.add_subplot(), spec, episodes, title)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    with atomic_path(path) as temp:
        temp.write_bytes(buffer.getvalue())
    return path
