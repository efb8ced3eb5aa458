"""Top-down trajectory maps (matplotlib only, no OpenGL): maze walls, each episode's path from
its start (circle) to its goal (star, inside a dashed circle of the success radius), green when
the episode reached the goal, red otherwise; a 1 m scale bar."""

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
# One colour per episode for colours="episode" (matplotlib's tab10 without its green and red,
# which mean reached and missed in the other mode, and its grey, the walls').
EPISODE_COLORS = ("#1f77b4", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf")
TRAJECTORY_COLOURS = ("outcome", "episode")


def plot_trajectory_map(
    ax,
    spec,
    episodes: Sequence[Episode],
    title: str | None = None,
    colours: str = "outcome",
    legend: bool = True,
) -> list:
    """Draws `episodes` over the maze of `spec` (an EnvSpec) on the matplotlib axes `ax`.

    Each goal gets a dashed circle of the env's success radius (a path that ends at its edge
    reached the goal) and the map a 1 m scale bar. `colours`: "outcome" paints reached paths
    green and missed ones red; "episode" gives each episode its own colour, shared by its path,
    start and goal, with reached paths solid and missed ones dashed (for many small panels, where
    red paths and their goals would be hard to tell apart).
    Returns the path lines, one per episode in order (callers and tests count them).
    """
    from matplotlib.patches import Circle

    if colours not in TRAJECTORY_COLOURS:
        raise ValueError(f"unknown colours {colours!r}; valid: {', '.join(TRAJECTORY_COLOURS)}")
    bounds = _draw_walls(ax, spec.maze) if spec.maze is not None else None
    lines = []
    for i, ep in enumerate(episodes):
        if colours == "outcome":
            color, style = (SUCCESS_COLOR if ep.success else FAILURE_COLOR), "-"
        else:
            color, style = EPISODE_COLORS[i % len(EPISODE_COLORS)], "-" if ep.success else "--"
        (line,) = ax.plot(
            ep.xy[:, 0], ep.xy[:, 1], color=color, ls=style, lw=1.2, alpha=0.85, zorder=3
        )
        lines.append(line)
        ax.plot(*ep.xy[0], "o", color=color, ms=5, mec="black", mew=0.6, zorder=4)
        ax.plot(*ep.goal_xy, "*", color=color, ms=11, mec="black", mew=0.6, zorder=4)
        ax.add_patch(
            Circle(ep.goal_xy, spec.success_radius, fill=False, ec=color, ls=":", lw=1.0, zorder=4)
        )
    if bounds is None:
        bounds = _open_floor_bounds(episodes, spec.success_radius)
    ax.set_xlim(bounds[0], bounds[1])
    ax.set_ylim(bounds[2], bounds[3])
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    draw_scale_bar(ax, bounds)
    reached = sum(ep.success for ep in episodes)
    ax.set_title(title if title is not None else f"{spec.name}: {reached}/{len(episodes)} reached")
    if legend:
        ax.legend(
            handles=legend_handles(colours, spec.success_radius),
            loc="upper right",
            fontsize=7,
            framealpha=0.8,
        )
    return lines


def legend_handles(colours: str, radius: float) -> list:
    """The legend entries of a trajectory map drawn with `colours` (figures with many panels draw
    them once)."""
    from matplotlib.lines import Line2D

    if colours == "outcome":
        paths = [
            Line2D([], [], color=SUCCESS_COLOR, label="reached"),
            Line2D([], [], color=FAILURE_COLOR, label="missed"),
        ]
    else:
        paths = [
            Line2D([], [], color="gray", label="reached"),
            Line2D([], [], color="gray", ls="--", label="missed"),
        ]
    return paths + [
        Line2D([], [], ls="", marker="o", color="gray", label="start"),
        Line2D([], [], ls="", marker="*", color="gray", ms=10, label="goal"),
        Line2D(
            [],
            [],
            ls="",
            marker="o",
            mfc="none",
            mec="gray",
            ms=9,
            label=f"success radius {radius:g} m",
        ),
    ]


def draw_scale_bar(ax, bounds: tuple[float, float, float, float], length: float = 1.0) -> None:
    """A `length` m bar with its label in the lower left corner of the map."""
    xmin, xmax, ymin, ymax = bounds
    x0, y0 = xmin + 0.04 * (xmax - xmin), ymin + 0.04 * (ymax - ymin)
    ax.plot([x0, x0 + length], [y0, y0], color="black", lw=2.5, solid_capstyle="butt", zorder=5)
    ax.text(
        x0 + length / 2,
        y0 + 0.015 * (ymax - ymin),
        f"{length:g} m",
        ha="center",
        va="bottom",
        fontsize=7,
        zorder=5,
    )


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
    fig = Figure(figsize=(6.0, max(3.0, 6.0 * aspect)), dpi=240, layout="constrained")
    plot_trajectory_map(fig.add_subplot(), spec, episodes, title)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    with atomic_path(path) as temp:
        temp.write_bytes(buffer.getvalue())
    return path
