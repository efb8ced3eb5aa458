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

import dataclasses
import io
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from crlkit.train import rundir
from crlkit.train.sweep import FAILED_FILE, SWEEP_FILE, read_json, record_path

REPORT_FILE = "report.md"
PLOTS = {
    "success": "success_vs_depth.png",
    "curves": "learning_curves.png",
    "cost": "cost_vs_depth.png",
}
REGIME_COLORS = {"online": "tab:blue", "offline": "tab:orange"}
STEP_UNITS = {"online": "env steps", "offline": "SGD steps"}


class ReportError(ValueError):
    """DIR holds nothing to report on; the message is one line."""


@dataclasses.dataclass
class Run:
    """One run dir's numbers (None where the run did not produce them)."""

    name: str
    regime: str
    depth: int
    actor_depth: int
    width: int
    batch_size: int
    seed: int
    status: str  # done, failed, unfinished
    reason: str = ""
    success: float | None = None
    success_from_tasks: bool = True
    fresh_success: float | None = None
    steps_at_goal: float | None = None
    episode_length: int | None = None
    params: int | None = None
    wall_seconds: float | None = None
    steps: int | None = None
    env_steps_per_s: float | None = None
    sgd_steps_per_s: float | None = None
    curve: list[tuple[int, float]] = dataclasses.field(default_factory=list)
    fresh_curve: list[tuple[int, float]] = dataclasses.field(default_factory=list)

    @property
    def group(self) -> tuple[str, int, int, int]:
        return (self.regime, self.depth, self.width, self.batch_size)


# ---------------------------------------------------------------------------------------------
# Reading run dirs


def find_run_dirs(directory: Path) -> list[Path]:
    """DIR itself when it is a run dir, else its sub-folders that hold a config.json."""
    if (directory / rundir.CONFIG_FILE).is_file():
        return [directory]
    subs = sorted(p for p in directory.iterdir() if p.is_dir())
    return [p for p in subs if (p / rundir.CONFIG_FILE).is_file() or (p / FAILED_FILE).is_file()]


def load_runs(directory: str | Path) -> list[Run]:
    """Every run under `directory`; ReportError (one line) when there is none."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ReportError(f"{directory} is not a directory")
    runs = [r for p in find_run_dirs(directory) if (r := read_run(p)) is not None]
    if not runs:
        raise ReportError(
            f"no crlkit runs in {directory}: expected run dirs (sub-folders with config.json "
            f"from crlkit sweep, online or offline)"
        )
    return sorted(runs, key=lambda r: (r.regime, r.width, r.batch_size, r.depth, r.seed))


def read_run(path: Path) -> Run | None:
    """The numbers of one run dir, or None when its config is not a crlkit online/offline one."""
    cell = read_json(record_path(path))
    config = read_json(path / rundir.CONFIG_FILE) or (cell or {}).get("request", {})
    regime = next((r for r in ("online", "offline") if isinstance(config.get(r), dict)), None)
    network = (config.get("learner") or {}).get("network")
    if regime is None or not isinstance(network, dict):
        return None
    try:
        run = Run(
            name=path.name,
            regime=regime,
            depth=int(network["critic_depth"]),
            actor_depth=int(network["actor_depth"]),
            width=int(network["width"]),
            batch_size=int(config[regime]["batch_size"]),
            seed=int(config[regime]["seed"]),
            status="unfinished",
        )
    except (KeyError, TypeError, ValueError):  # a config.json of some other program
        return None
    run.params = count_params(config, regime)
    summary = read_json(path / rundir.SUMMARY_FILE)
    failed = read_json(path / FAILED_FILE)
    if failed is not None:
        run.status, run.reason = "failed", str(failed.get("reason", "unknown"))
    elif summary is not None and (cell is None or cell.get("status") == "done"):
        run.status = "done"
    if summary is not None:
        _read_summary(run, summary)
    events = rundir.read_events(path / rundir.METRICS_JSONL)
    if regime == "online":
        run.curve = _curve(events, "eval_tasks/success", "eval/success")
        run.fresh_curve = _curve(events, "eval/success")
    else:
        run.curve = _curve(events, "eval/success")
    return run


def _read_summary(run: Run, summary: dict[str, Any]) -> None:
    """Final numbers from summary.json (the two loops name some of them differently)."""
    if run.regime == "online":
        run.success_from_tasks = "eval_tasks/success" in summary
        run.success = _num(summary.get("eval_tasks/success", summary.get("eval/success")))
        run.fresh_success = _num(summary.get("eval/success"))
        run.steps_at_goal = _num(summary.get("eval/steps_at_goal"))
        run.steps = _num(summary.get("env_steps"))
        run.env_steps_per_s = _num(summary.get("env_steps_per_s"))
    else:
        run.success = _num(summary.get("eval/success"))
        run.steps = _num(summary.get("sgd_steps"))
    run.sgd_steps_per_s = _num(summary.get("sgd_steps_per_s"))
    # The loop's own wall clock: carried across resumes, so a killed-and-resumed run counts
    # only the time it trained, compiled and evaluated.
    run.wall_seconds = _num(summary.get("wall_seconds"))


def _num(value: Any) -> Any:
    """A finite number, or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if math.isfinite(value) else None


def _curve(events: list[dict[str, Any]], *keys: str) -> list[tuple[int, float]]:
    """(step, value) of every event holding one of `keys` (the first present wins)."""
    points: dict[int, float] = {}
    for event in events:
        value = next((event[k] for k in keys if _num(event.get(k)) is not None), None)
        if value is not None and isinstance(event.get("step"), int):
            points[event["step"]] = float(value)
    return sorted(points.items())


_PARAMS_CACHE: dict[str, int | None] = {}


def count_params(config: dict[str, Any], regime: str) -> int | None:
    """Actor + critic (phi, psi) parameters of a run's learner, from shapes only (no compute)."""
    key = json.dumps([config.get("learner"), config.get(regime, {}).get("env"),
                      config.get("dataset")], sort_keys=True)  # fmt: skip
    if key not in _PARAMS_CACHE:
        try:
            _PARAMS_CACHE[key] = _count_params(config, regime)
        except Exception:  # an env or config this version cannot build: the count stays empty
            _PARAMS_CACHE[key] = None
    return _PARAMS_CACHE[key]


def _count_params(config: dict[str, Any], regime: str) -> int | None:
    import jax

    from crlkit import learner
    from crlkit.config import LearnerConfig, from_dict
    from crlkit.networks import count_params as count_tree

    dims = _dims(config, regime)
    if dims is None:
        return None
    lcfg = from_dict(LearnerConfig, config["learner"])
    nets = learner.make_networks(lcfg, dims)
    shapes = jax.eval_shape(lambda k: learner.init(nets, lcfg, dims, k), jax.random.PRNGKey(0))
    return count_tree(shapes.critic.params) + count_tree(shapes.actor.params)


def _dims(config: dict[str, Any], regime: str):
    from crlkit.learner import Dims

    if regime == "offline":
        data = config.get("dataset")
        if not isinstance(data, dict):
            return None
        return Dims(int(data["obs_dim"]), len(data["goal_indices"]), int(data["action_dim"]))
    from crlkit.envs import make

    env_spec = make(config["online"]["env"], backend=config["online"].get("backend", "auto")).spec
    return Dims(env_spec.state_dim, env_spec.goal_dim, env_spec.action_dim)


# ---------------------------------------------------------------------------------------------
# Grouping over seeds


@dataclasses.dataclass
class Group:
    """The seeds of one (regime, depth, width, batch) cell, reduced."""

    regime: str
    depth: int
    width: int
    batch_size: int
    runs: list[Run]

    @property
    def done(self) -> list[Run]:
        return [r for r in self.runs if r.status == "done"]

    def stat(self, field: str) -> tuple[float, float, int] | None:
        """(mean, std over seeds, count) of a field over the finished runs; None if none has it."""
        values = [getattr(r, field) for r in self.done if getattr(r, field) is not None]
        if not values:
            return None
        std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        return float(np.mean(values)), std, len(values)


def group_runs(runs: Iterable[Run]) -> list[Group]:
    """Runs grouped by (regime, depth, width, batch size), in that order."""
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.group, []).append(run)
    return [Group(*key, runs=rs) for key, rs in sorted(groups.items())]


# ---------------------------------------------------------------------------------------------
# report.md


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
    """The markdown table: one row per (regime, depth, width, batch), mean ± std over seeds."""
    lines = [
        "| regime | depth | width | batch | seeds done | success | fresh-goal success "
        "| time at goal (steps) | params | wall s | env steps/s | SGD steps/s |",
        "|---|---:|---:|---:|---|---|---|---|---:|---:|---:|---:|",
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
            f"| {g.regime} | {g.depth} | {g.width} | {g.batch_size} | {seeds} "
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
    manifest = read_json(directory / SWEEP_FILE) or {}
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
        *grid_table(group_runs(runs)),
        "",
    ]
    for key, title in (("success", "Final success vs depth"), ("curves", "Learning curves"),
                       ("cost", "Cost vs depth")):  # fmt: skip
        if key in plots:
            lines += [f"## {title}", "", f"![{title}]({plots[key]})", ""]
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
        flat = ", ".join(f"{k}={v}" for k, v in _flat(cfg).items())
        lines += [f"{name}:", "", "```", flat, "```", ""]
    return lines


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"network": {"width": 64}} -> {"network.width": 64}."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        out.update(_flat(value, name + ".") if isinstance(value, dict) else {name: value})
    return out


# ---------------------------------------------------------------------------------------------
# Plots (matplotlib's object API on the Agg canvas: no pyplot state, no display needed)


def _figure(ncols: int, width: float = 5.0, height: float = 3.6):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), dpi=100, layout="constrained")
    return fig, [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]


def _save(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    rundir.atomic_write_bytes(path, buf.getvalue())


def _legend(ax, **kwargs: Any) -> None:
    """A legend when the axes hold labelled lines (an all-failed sweep draws none)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kwargs)


def _series_label(g: Group, groups: list[Group]) -> str:
    """'online', plus width/batch when the grid varies them."""
    label = g.regime
    if len({x.width for x in groups}) > 1:
        label += f" w{g.width}"
    if len({x.batch_size for x in groups}) > 1:
        label += f" b{g.batch_size}"
    return label


def _depth_axis(ax, depths: list[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(depths)
    ax.set_xticklabels([str(d) for d in depths])
    ax.minorticks_off()
    ax.set_xlabel("depth (Dense layers in residual blocks)")
    ax.grid(alpha=0.3)


def _by_series(groups: list[Group]) -> dict[str, list[Group]]:
    series: dict[str, list[Group]] = {}
    for g in groups:
        series.setdefault(_series_label(g, groups), []).append(g)
    return series


def plot_success(groups: list[Group], path: Path) -> None:
    """The headline: final success vs depth, a line per regime, seeds as dots, ±std bars.

    Online runs also get a dashed line for fresh-goal success when their solid line is OGBench's
    task success.
    """
    fig, (ax,) = _figure(1, 5.5, 3.8)
    for label, gs in _by_series(groups).items():
        color = REGIME_COLORS.get(gs[0].regime)
        tasks = all(r.success_from_tasks for g in gs for r in g.done)
        _success_line(ax, gs, "success", label + (" (OGBench tasks)" if tasks else ""), color, "-")
        if gs[0].regime == "online" and tasks:
            _success_line(ax, gs, "fresh_success", f"{label} (fresh goals)", color, "--")
    _depth_axis(ax, sorted({g.depth for g in groups}))
    ax.set_ylim(-0.03, 1.03)
    ax.set_ylabel("final success")
    ax.set_title("Final success vs depth (mean ± std over seeds; dots: seeds)", fontsize=9)
    _legend(ax, fontsize=8)
    _save(fig, path)


def _success_line(ax, gs: list[Group], field: str, label: str, color, style: str) -> None:
    pts = [(g.depth, g.stat(field)) for g in gs if g.stat(field) is not None]
    if not pts:
        return
    ax.errorbar([d for d, _ in pts], [s[0] for _, s in pts], yerr=[s[1] for _, s in pts],
                marker="o", capsize=4, color=color, linestyle=style, label=label)  # fmt: skip
    for g in gs:
        seeds = [getattr(r, field) for r in g.done if getattr(r, field) is not None]
        ax.scatter([g.depth] * len(seeds), seeds, s=12, alpha=0.5, color=color)


def plot_curves(runs: list[Run], path: Path) -> None:
    """Evaluation success during training: a panel per regime, a line per depth (seed mean).

    Online panels draw task success solid and fresh-goal success dashed (when both exist).
    """
    regimes = sorted({r.regime for r in runs})
    fig, axes = _figure(len(regimes))
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
                ax.plot(steps, mean, marker=".", linestyle="--", color=cmap[g.depth],
                        label=f"{label} fresh goals")  # fmt: skip
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


def plot_cost(groups: list[Group], path: Path) -> None:
    """Wall-clock seconds per run and parameters vs depth."""
    fig, (ax_wall, ax_params) = _figure(2, 4.5, 3.4)
    for label, gs in _by_series(groups).items():
        color = REGIME_COLORS.get(gs[0].regime)
        walls = [(g.depth, g.stat("wall_seconds")) for g in gs if g.stat("wall_seconds")]
        if walls:
            ax_wall.errorbar([d for d, _ in walls], [s[0] for _, s in walls],
                             yerr=[s[1] for _, s in walls], marker="o", capsize=4, color=color,
                             label=label)  # fmt: skip
    params: dict[tuple, list[tuple[int, int]]] = {}
    for g in groups:
        count = next((r.params for r in g.runs if r.params is not None), None)
        if count is not None:
            params.setdefault((g.regime, g.width), []).append((g.depth, count))
    for (regime, width), pts in sorted(params.items()):
        pts = sorted(set(pts))
        ax_params.plot([d for d, _ in pts], [c for _, c in pts], marker="o",
                       color=REGIME_COLORS.get(regime), label=f"{regime} w{width}")  # fmt: skip
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


# ---------------------------------------------------------------------------------------------
# Entry point


def write_report(directory: str | Path, out: str | Path | None = None) -> Path:
    """Read the runs under `directory`; write report.md and the plots to `out` (default: it).

    Returns the report.md path. Raises ReportError (one line) when there is nothing to report.
    """
    directory = Path(directory)
    runs = load_runs(directory)
    out = Path(out) if out is not None else directory
    out.mkdir(parents=True, exist_ok=True)
    groups = group_runs(runs)
    plot_success(groups, out / PLOTS["success"])
    plot_curves(runs, out / PLOTS["curves"])
    plot_cost(groups, out / PLOTS["cost"])
    text = report_markdown(directory, runs, dict(PLOTS))
    rundir.atomic_write_bytes(out / REPORT_FILE, text.encode())
    return out / REPORT_FILE
