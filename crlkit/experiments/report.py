"""`crlkit report DIR`: read the run dirs of a sweep, write report.md and PNG plots.

```
report.md               the grid table (regime x depth x width x batch: mean +- std over seeds),
                        one row per run, failed and unfinished runs with their reasons
success_vs_depth.png    final success vs depth, one line per regime (the headline plot)
learning_curves.png     evaluation success over training, one line per depth, a panel per regime
cost_vs_depth.png       wall-clock seconds and parameter count vs depth
```

"success" is OGBench's 5-task success where the env has fixed tasks (online: `eval_tasks/success`;
offline: `eval/success`), so both regimes are scored by the same protocol on the same maze; online
runs in envs without tasks use fresh-goal success (`eval/success`). Online fresh-goal success is
shown beside it (dashed in the plots). docs/sweep.md explains every column.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crlkit import files
from crlkit.experiments import report_gallery, report_plots
from crlkit.experiments.report_data import (
    STEP_UNITS,
    Group,
    ReportError,
    Run,
    group_runs,
    load_runs,
)
from crlkit.experiments.sweep import SWEEP_FILE

REPORT_FILE = "report.md"
GALLERY_TITLE = "What each depth does"
GALLERY_TEXT = (
    "The seed-0 run of each cell acts deterministically on the same starts and goals (fresh "
    "goals from one seed); green paths reached the goal (star), red ones did not. Under each "
    "map, the run's value map: its critic's energy of the actor's action at every place, for "
    "one goal (white star) shared by every depth, with one rollout toward it."
)
PLOTS = {
    "success": "success_vs_depth.png",
    "curves": "learning_curves.png",
    "cost": "cost_vs_depth.png",
    "gallery": "gallery.png",
}

__all__ = ["PLOTS", "REPORT_FILE", "ReportError", "write_report"]


def _pm(stat: tuple[float, float, int] | None, fmt: str = "{:.2f}") -> str:
    if stat is None:
        return "–"
    mean, std, n = stat
    return fmt.format(mean) + (" ± " + fmt.format(std) if n > 1 else "")


def _fmt_int(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _fmt_params(value: int | None) -> str:
    if value is None:
        return "–"
    return f"{value / 1e6:.2f}M" if value >= 1e5 else f"{value / 1e3:.1f}k"


def grid_table(groups: list[Group]) -> list[str]:
    """The markdown table: one row per (regime, depth, width, batch[, norm]), mean ± std over
    seeds; the norm column only when the grid varies it."""
    norms = len({g.norm for g in groups}) > 1
    lines = [
        "| regime | depth | width | batch | "
        + ("norm | " if norms else "")
        + "seeds done | success | fresh-goal success "
        "| time at goal (steps) | params | wall s | env steps/s | SGD steps/s |",
        "|---|---:|---:|---:|" + ("---|" if norms else "") + "---|---|---|---|---:|---:|---:|---:|",
    ]
    for g in groups:
        failed = sum(r.status == "failed" for r in g.runs)
        seeds = f"{len(g.done)}/{len(g.runs)}" + (f" ({failed} failed)" if failed else "")
        params = next((r.params for r in g.runs if r.params is not None), None)
        wall, env_rate, sgd_rate = (
            g.stat("wall_seconds"),
            g.stat("env_steps_per_s"),
            g.stat("sgd_steps_per_s"),
        )
        lines.append(
            f"| {g.regime} | {g.depth} | {g.width} | {g.batch_size} | "
            + (f"{g.norm} | " if norms else "")
            + f"{seeds} "
            f"| {_pm(g.stat('success'))} | {_pm(g.stat('fresh_success'))} "
            f"| {_pm(g.stat('steps_at_goal'), '{:.0f}')} | {_fmt_params(params)} "
            f"| {_fmt_int(wall and wall[0])} | {_fmt_int(env_rate and env_rate[0])} "
            f"| {_fmt_int(sgd_rate and sgd_rate[0])} |"
        )
    return lines


def runs_table(runs: list[Run]) -> list[str]:
    """One row per run dir."""
    lines = [
        "| run | status | steps | success | fresh-goal success | wall s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in runs:
        steps = "–" if r.steps is None else f"{r.steps:,} {STEP_UNITS[r.regime]}"
        fresh = "–" if r.fresh_success is None else f"{r.fresh_success:.3f}"
        success = "–" if r.success is None else f"{r.success:.3f}"
        wall = _fmt_int(r.wall_seconds)
        lines.append(f"| {r.name} | {r.status} | {steps} | {success} | {fresh} | {wall} |")
    return lines


def report_markdown(directory: Path, runs: list[Run], plots: dict[str, str]) -> str:
    """The whole report.md text."""
    manifest = files.read_json(directory / SWEEP_FILE) or {}
    groups = group_runs(runs)
    lines = [f"# Sweep report: {directory.name}", ""]
    if manifest.get("command"):
        lines += ["Made with:", "", "```", manifest["command"], "```", ""]
    lines += [
        "success: OGBench's 5 evaluation tasks of the maze (online `eval_tasks/success`, offline "
        "`eval/success`), or fresh-goal success (`eval/success`) for online envs without tasks; "
        "fresh-goal success: online only; time at goal: online only, steps within the goal radius "
        "per evaluation episode (the paper's metric). Mean ± std (sample std) over the finished "
        "seeds. Throughput is training time only (no compile, no evaluation). "
        "Columns: docs/sweep.md.",
        "",
        *grid_table(groups),
        "",
    ]
    for key, title in (
        ("success", "Final success vs depth"),
        ("curves", "Learning curves"),
        ("cost", "Cost vs depth"),
        ("gallery", GALLERY_TITLE),
    ):
        if key in plots:
            lines += [f"## {title}", "", f"![{title}]({plots[key]})", ""]
            if key == "gallery":
                lines += [GALLERY_TEXT, "", *report_gallery.video_links(groups, directory), ""]
    lines += ["## Runs", "", *runs_table(runs), ""]
    lines += _settings(manifest)
    problems = [r for r in runs if r.status != "done"]
    if problems:
        lines += ["## Failed or unfinished runs", ""]
        lines += [
            f"- `{r.name}`: {r.status}" + (f": {r.reason}" if r.reason else "") for r in problems
        ]
        lines.append("")
    return "\n".join(lines)


def _settings(manifest: dict[str, Any]) -> list[str]:
    """The sweep's base configs (sweep.json), so the report stands on its own."""
    base = manifest.get("base") or {}
    parts = [(name, base[name]) for name in ("learner", "online", "offline") if base.get(name)]
    if not parts:
        return []
    lines = ["## Base settings", ""]
    lines += [
        "From sweep.json. Each cell replaces the depth, the seed, the swept widths or batch sizes "
        "and the actor loss (sac online, ddpg_bc offline); its config.json holds the exact values.",
        "",
    ]
    for name, cfg in parts:
        flat = ", ".join(f"{k}={v}" for k, v in files.flatten_dict(cfg).items())
        lines += [f"{name}:", "", "```", flat, "```", ""]
    return lines


def write_report(
    directory: str | Path, out: str | Path | None = None, gallery: bool = True, echo=print
) -> Path:
    """Read the runs under `directory`; write report.md and the plots to `out` (default: it).

    `gallery`: also draw each depth's behaviour (runs the seed-0 checkpoints; see
    report_gallery.py). Returns the report.md path. Raises ReportError (one line) when there is
    nothing to report.
    """
    directory = Path(directory)
    runs = load_runs(directory)
    out = Path(out) if out is not None else directory
    out.mkdir(parents=True, exist_ok=True)
    groups = group_runs(runs)
    context = report_plots.plot_context(files.read_json(directory / SWEEP_FILE) or {})
    report_plots.plot_success(groups, out / PLOTS["success"], context)
    report_plots.plot_curves(runs, out / PLOTS["curves"], context)
    report_plots.plot_cost(groups, out / PLOTS["cost"], context)
    plots = dict(PLOTS)
    if not (gallery and report_gallery.plot_gallery(groups, out / PLOTS["gallery"], echo, context)):
        plots.pop("gallery")
    text = report_markdown(directory, runs, plots)
    files.atomic_write_bytes(out / REPORT_FILE, text.encode())
    return out / REPORT_FILE
