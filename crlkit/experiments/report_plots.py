"""The sweep report's plots: success vs depth, learning curves, cost vs depth.

matplotlib's object API on the Agg canvas: no pyplot state, no display needed.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from crlkit import files
from crlkit.experiments.report_data import REGIME_COLORS, STEP_UNITS, Group, Run, group_runs

DPI = 200  # twice matplotlib's screen resolution: sharp in a README and on a HiDPI screen


def _figure(ncols: int, width: float = 5.0, height: float = 3.6, context: str = ""):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), dpi=DPI, layout="constrained")
    if context:
        fig.suptitle(context, fontsize=9)
    return fig, [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]


def _save(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    files.atomic_write_bytes(path, buf.getvalue())


def plot_context(manifest: dict[str, Any]) -> str:
    """What a sweep trained on, for the plots' titles: 'online: <env>, N env steps' and 'offline:
    <dataset>, N SGD steps' on two lines (from sweep.json's base configs; what it lacks is left
    out)."""
    base = manifest.get("base") or {}
    parts = []
    for regime, where in (("online", "env"), ("offline", "dataset")):
        cfg = base.get(regime) or {}
        if not cfg.get(where):
            continue
        steps = cfg.get("steps")
        budget = f", {steps:,} {STEP_UNITS[regime]}" if isinstance(steps, int) and steps else ""
        parts.append(f"{regime}: {Path(str(cfg[where])).name}{budget}")
    return "\n".join(parts)


def _legend(ax, **kwargs: Any) -> None:
    """A legend when the axes hold labelled lines (an all-failed sweep draws none)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kwargs)


def _series_label(g: Group, groups: list[Group]) -> str:
    """'online', plus width/batch/norm when the grid varies them."""
    label = g.regime
    if len({x.width for x in groups}) > 1:
        label += f" w{g.width}"
    if len({x.batch_size for x in groups}) > 1:
        label += f" b{g.batch_size}"
    if len({x.norm for x in groups}) > 1:
        label += f" {g.norm}"
    return label


def _depth_axis(ax, depths: list[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(depths)
    ax.set_xticklabels([str(d) for d in depths])
    ax.minorticks_off()
    ax.set_xlim(min(depths) / 1.5, max(depths) * 1.5)  # room for the nudged series and caps
    ax.set_xlabel("depth (Dense layers in residual blocks)")
    ax.grid(alpha=0.3)


def _by_series(groups: list[Group]) -> dict[str, list[Group]]:
    series: dict[str, list[Group]] = {}
    for g in groups:
        series.setdefault(_series_label(g, groups), []).append(g)
    return series


def plot_success(groups: list[Group], path: Path, context: str = "") -> None:
    """The headline: final success vs depth, a line per regime, seeds as dots, ±std bars.

    Colours tell the regimes apart, markers the series: online runs with OGBench's tasks draw
    task success (filled circles, solid) and fresh-goal success (open squares, dashed, nudged
    right so the error bars do not hide each other).
    """
    fig, (ax,) = _figure(1, 6.0, 4.2, context)
    for label, gs in _by_series(groups).items():
        color = REGIME_COLORS.get(gs[0].regime)
        tasks = all(r.success_from_tasks for g in gs for r in g.done)
        _success_line(ax, gs, "success", label + (", OGBench tasks" if tasks else ""), color)
        if gs[0].regime == "online" and tasks:
            _success_line(ax, gs, "fresh_success", f"{label}, fresh goals", color, fresh=True)
    _depth_axis(ax, sorted({g.depth for g in groups}))
    ax.set_ylim(-0.03, 1.03)
    ax.set_ylabel("final success")
    ax.set_title("Final success vs depth (mean ± std over seeds; small dots: seeds)", fontsize=9)
    _legend(ax, fontsize=8)
    _save(fig, path)


def _success_line(ax, gs: list[Group], field: str, label: str, color, fresh: bool = False) -> None:
    pts = [(g.depth, g.stat(field)) for g in gs if g.stat(field) is not None]
    if not pts:
        return
    nudge = 1.06 if fresh else 1.0  # on the log2 depth axis: a small shift right
    style = dict(marker="s", mfc="white", linestyle="--") if fresh else dict(marker="o")
    ax.errorbar(
        [d * nudge for d, _ in pts],
        [s[0] for _, s in pts],
        yerr=[s[1] for _, s in pts],
        capsize=4,
        color=color,
        label=label,
        **style,
    )
    for g in gs:
        seeds = [getattr(r, field) for r in g.done if getattr(r, field) is not None]
        ax.scatter([g.depth * nudge] * len(seeds), seeds, s=10, alpha=0.5, color=color)


def plot_curves(runs: list[Run], path: Path, context: str = "") -> None:
    """Evaluation success during training: a panel per regime, a line per depth (seed mean).

    Online panels draw task success solid and fresh-goal success dashed (when both exist).
    """
    regimes = sorted({r.regime for r in runs})
    fig, axes = _figure(len(regimes), context=context)
    for ax, regime in zip(axes, regimes, strict=True):
        groups = [g for g in group_runs(runs) if g.regime == regime]
        cmap = _depth_colors(sorted({g.depth for g in groups}))
        for g in groups:
            label = f"depth {g.depth}" + _series_label(g, groups).removeprefix(regime)
            tasks = all(r.success_from_tasks for r in g.done)
            solid = label + (" tasks" if regime == "online" and tasks else "")
            steps, mean = _mean_curve([r.curve for r in g.runs if r.curve])
            if steps:
                ax.plot(steps, mean, marker=".", color=cmap[g.depth], label=solid)
            steps, mean = _mean_curve([r.fresh_curve for r in g.runs if r.fresh_curve])
            if steps and tasks:
                ax.plot(
                    steps,
                    mean,
                    marker=".",
                    linestyle="--",
                    color=cmap[g.depth],
                    label=f"{label} fresh goals",
                )
        ax.set_xlabel(STEP_UNITS[regime])
        ax.set_ylabel("evaluation success")
        ax.set_ylim(-0.03, 1.03)
        ax.set_title(f"{regime} (mean over seeds)", fontsize=9)
        ax.grid(alpha=0.3)
        _legend(ax, fontsize=8)
    _save(fig, path)


def _depth_colors(depths: list[int]) -> dict[int, Any]:
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return {d: cmap(i / max(len(depths) - 1, 1) * 0.85) for i, d in enumerate(depths)}


def _mean_curve(curves: list[list[tuple[int, float]]]) -> tuple[list[int], list[float]]:
    """Mean over curves at the steps every curve evaluated at (seeds share an eval schedule)."""
    if not curves:
        return [], []
    common = sorted(set.intersection(*(set(s for s, _ in c) for c in curves)))
    tables = [dict(c) for c in curves]
    return common, [float(np.mean([t[s] for t in tables])) for s in common]


def plot_cost(groups: list[Group], path: Path, context: str = "") -> None:
    """Wall-clock seconds per run and parameters vs depth."""
    fig, (ax_wall, ax_params) = _figure(2, 4.5, 3.6, context)
    for label, gs in _by_series(groups).items():
        color = REGIME_COLORS.get(gs[0].regime)
        walls = [(g.depth, g.stat("wall_seconds")) for g in gs if g.stat("wall_seconds")]
        if walls:
            ax_wall.errorbar(
                [d for d, _ in walls],
                [s[0] for _, s in walls],
                yerr=[s[1] for _, s in walls],
                marker="o",
                capsize=4,
                color=color,
                label=label,
            )
    params: dict[tuple, list[tuple[int, int]]] = {}
    for g in groups:
        count = next((r.params for r in g.runs if r.params is not None), None)
        if count is not None:
            params.setdefault((g.regime, g.width), []).append((g.depth, count))
    for (regime, width), pts in sorted(params.items()):
        pts = sorted(set(pts))
        ax_params.plot(
            [d for d, _ in pts],
            [c for _, c in pts],
            marker="o",
            color=REGIME_COLORS.get(regime),
            label=f"{regime} w{width}",
        )
    depths = sorted({g.depth for g in groups})
    for ax, ylabel, title in (
        (ax_wall, "wall seconds per run", "Wall-clock (incl. compile and eval)"),
        (ax_params, "parameters (actor + critic)", "Parameters"),
    ):
        _depth_axis(ax, depths)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=9)
        _legend(ax, fontsize=8)
    ax_wall.set_ylim(bottom=0)
    ax_params.set_yscale("log")
    _save(fig, path)
