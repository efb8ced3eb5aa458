"""The numbers of a sweep's run dirs: one `Run` per run dir, grouped over seeds.

Everything is read from the files the loops write (config.json, summary.json, metrics.jsonl)
and the sweep's cell records; nothing is rebuilt or recomputed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from crlkit import files
from crlkit import metric_names as names
from crlkit.experiments.sweep import FAILED_FILE, record_path
from crlkit.runs import rundir

REGIME_COLORS = {"online": "tab:blue", "offline": "tab:orange"}
STEP_UNITS = {"online": "env steps", "offline": "SGD steps"}


class ReportError(ValueError):
    """DIR holds nothing to report on; the message is one line."""


@dataclasses.dataclass
class Run:
    """One run dir's numbers (None where the run did not produce them)."""

    name: str
    path: str
    regime: str
    depth: int
    actor_depth: int
    width: int
    batch_size: int
    seed: int
    status: str  # done, failed, unfinished
    norm: str = "layernorm"
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
    def group(self) -> tuple[str, int, int, int, str]:
        return (self.regime, self.depth, self.width, self.batch_size, self.norm)


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
    return sorted(runs, key=lambda r: (r.regime, r.width, r.batch_size, r.norm, r.depth, r.seed))


def read_run(path: Path) -> Run | None:
    """The numbers of one run dir, or None when its config is not a crlkit online/offline one."""
    cell = files.read_json(record_path(path))
    config = files.read_json(path / rundir.CONFIG_FILE) or (cell or {}).get("request", {})
    regime = next((r for r in ("online", "offline") if isinstance(config.get(r), dict)), None)
    network = (config.get("learner") or {}).get("network")
    if regime is None or not isinstance(network, dict):
        return None
    try:
        run = Run(
            name=path.name,
            path=str(path),
            regime=regime,
            depth=int(network["critic_depth"]),
            actor_depth=int(network["actor_depth"]),
            width=int(network["width"]),
            batch_size=int(config[regime]["batch_size"]),
            seed=int(config[regime]["seed"]),
            status="unfinished",
            norm=str(network.get("norm", "layernorm")),
        )
    except (KeyError, TypeError, ValueError):  # a config.json of some other program
        return None
    summary = files.read_json(path / rundir.SUMMARY_FILE)
    failed = files.read_json(path / FAILED_FILE)
    if failed is not None:
        run.status, run.reason = "failed", str(failed.get("reason", "unknown"))
    elif summary is not None and (cell is None or cell.get("status") == "done"):
        run.status = "done"
    if summary is not None:
        _read_summary(run, summary)
    events = rundir.read_events(path / rundir.METRICS_JSONL)
    if regime == "online":
        run.curve = _curve(events, names.TASKS_SUCCESS, names.SUCCESS)
        run.fresh_curve = _curve(events, names.SUCCESS)
    else:
        run.curve = _curve(events, names.SUCCESS)
    return run


def _read_summary(run: Run, summary: dict[str, Any]) -> None:
    """Final numbers from summary.json (the two loops name some of them differently)."""
    if run.regime == "online":
        run.success_from_tasks = names.TASKS_SUCCESS in summary
        run.success = _num(summary.get(names.TASKS_SUCCESS, summary.get(names.SUCCESS)))
        run.fresh_success = _num(summary.get(names.SUCCESS))
        run.steps_at_goal = _num(summary.get(names.STEPS_AT_GOAL))
        run.steps = _num(summary.get("env_steps"))
        run.env_steps_per_s = _num(summary.get("env_steps_per_s"))
    else:
        run.success = _num(summary.get(names.SUCCESS))
        run.steps = _num(summary.get("sgd_steps"))
    run.sgd_steps_per_s = _num(summary.get("sgd_steps_per_s"))
    run.params = _num(summary.get("params"))
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


@dataclasses.dataclass
class Group:
    """The seeds of one (regime, depth, width, batch, norm) cell, reduced."""

    regime: str
    depth: int
    width: int
    batch_size: int
    norm: str
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
    """Runs grouped by (regime, depth, width, batch size, norm), in that order."""
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.group, []).append(run)
    return [Group(*key, runs=rs) for key, rs in sorted(groups.items())]
