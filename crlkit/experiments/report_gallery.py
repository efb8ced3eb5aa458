"""The sweep report's gallery: what each depth does, as top-down trajectory maps side by side.

Two rows per regime, one column per depth: the seed-0 run of each (regime, depth, width, batch)
cell acts deterministically on the same starts and goals (fresh goals drawn from one seed), so
"does depth change behaviour?" can be seen online and offline in one figure; under each map, the
run's value map (`crlkit render --kind value`: the critic's energy of the actor's action at every
place, for one goal shared by every depth) shows what its critic learned. Videos the runs wrote
(`--video`: eval.mp4) are linked from report.md.
"""

from __future__ import annotations

import io
from pathlib import Path

from crlkit import files
from crlkit.experiments.report_data import Group, Run

GALLERY_EPISODES = 6
GALLERY_SEED = 0
VIDEO_FILE = "eval.mp4"
GALLERY_DPI = 130


def gallery_runs(groups: list[Group]) -> list[tuple[Group, Run]]:
    """The finished run with the lowest seed of every group (groups without one are left out)."""
    picks = []
    for g in groups:
        done = sorted(g.done, key=lambda r: r.seed)
        if done:
            picks.append((g, done[0]))
    return picks


def plot_gallery(groups: list[Group], path: Path, echo=lambda _: None, context: str = "") -> bool:
    """Writes the gallery png; False (and a note through `echo`) when nothing could be drawn.

    Paths are coloured per episode (path, start, goal and its success radius share a colour;
    missed paths dashed), with one legend for the figure; `context` (what the sweep trained on)
    is its title."""
    from matplotlib.figure import Figure

    picks = gallery_runs(groups)
    regimes = sorted({g.regime for g, _ in picks})
    depths = sorted({g.depth for g, _ in picks})
    if not picks:
        return False
    rows, cols = 2 * len(regimes), len(depths)
    fig = Figure(figsize=(3.6 * cols, 3.4 * rows + 0.6), dpi=GALLERY_DPI, layout="constrained")
    radii = []
    for g, run in picks:
        index = 2 * regimes.index(g.regime) * cols + depths.index(g.depth) + 1
        radius = _trajectory_panel(fig.add_subplot(rows, cols, index), g, run, echo)
        radii += [] if radius is None else [radius]
        _value_panel(fig, fig.add_subplot(rows, cols, index + cols), g, run, echo)
    if not radii:
        return False
    _figure_legend(fig, radii[0])
    if context:
        fig.suptitle(context, fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=GALLERY_DPI)
    files.atomic_write_bytes(path, buf.getvalue())
    return True


def _trajectory_panel(ax, g: Group, run: Run, echo) -> float | None:
    """The run's paths on the gallery's episodes; returns its env's success radius (None: not
    drawn)."""
    from crlkit.render import RenderError, plot_trajectory_map, record_run

    try:
        rec = record_run(run.path, GALLERY_EPISODES, GALLERY_SEED)
    except (RenderError, ValueError) as err:
        echo(f"gallery: skipped {run.name} ({err})")
        ax.set_axis_off()
        return None
    reached = sum(ep.success for ep in rec.episodes)
    title = f"{g.regime}, depth {g.depth}: {reached}/{len(rec.episodes)} reached"
    plot_trajectory_map(ax, rec.spec, rec.episodes, title=title, colours="episode", legend=False)
    ax.title.set_fontsize(9)
    return float(rec.spec.success_radius)


def _figure_legend(fig, radius: float) -> None:
    """One legend under the panels (with the success radius of the sweep's env)."""
    from crlkit.render.trajmap import legend_handles

    fig.legend(
        handles=legend_handles("episode", radius),
        loc="outside lower center",
        ncols=5,
        fontsize=8,
        frameon=False,
    )


def _value_panel(fig, ax, g: Group, run: Run, echo) -> None:
    """The run's value map for the goal drawn from GALLERY_SEED (the same for every depth)."""
    from crlkit.render import RenderError, compute_value_map, plot_value_map
    from crlkit.render.value_map import energy_label

    try:
        vm = compute_value_map(run.path, seed=GALLERY_SEED)
    except (RenderError, ValueError) as err:
        echo(f"gallery: no value map for {run.name} ({err})")
        ax.set_axis_off()
        return
    image = plot_value_map(ax, vm)
    goal = f"({vm.goal_xy[0]:.1f}, {vm.goal_xy[1]:.1f})"
    ax.set_title(f"{g.regime}, depth {g.depth}: value to goal {goal}", fontsize=8)
    fig.colorbar(image, ax=ax, shrink=0.8).set_label(energy_label(vm), fontsize=7)


def video_links(groups: list[Group], report_dir: Path) -> list[str]:
    """Markdown lines linking each gallery run's eval.mp4, where the run wrote one."""
    lines = []
    for g, run in gallery_runs(groups):
        video = Path(run.path) / VIDEO_FILE
        if video.is_file():
            rel = video.relative_to(report_dir) if video.is_relative_to(report_dir) else video
            lines.append(f"- [{g.regime}, depth {g.depth} ({run.name})]({rel})")
    return lines
