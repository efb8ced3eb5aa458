"""`crlkit sweep`: a grid of runs (regime x depth x width x batch size x seed), one run dir each.

```
DIR/
  sweep.json               the grid, the base configs and the command that made it
  cells/online-d4-s0.json  per cell: its request, status (running / done / failed), sweep wall time,
                           the start and end time of its last attempt
  logs/online-d4-s0.log    the output of a cell run in its own process (local and slurm launchers)
  online-d4-s0/            one run dir per cell (docs/runs.md), made by crlkit.train.online.train
    failed.json            only for a failed cell: its reason
  offline-d4-s0/           made by crlkit.train.offline.run
  ...
  report.md, *.png         written by `crlkit report DIR` (and at the end of a sweep)
```

Every cell runs through the library entry points of `crlkit online` / `crlkit offline` (seeds
run as separate cells: neither loop trains several seeds in one program). Where a cell runs is the
launcher's business (launchers.py): inline, one after the other in this process; local, N cell
processes at once; slurm, one job array. A cell process (`python -m crlkit.experiments.cell DIR
CELL`) rebuilds its plan from sweep.json and runs `run_cell`, so the cell record, failed.json and
resume are the same whichever launcher ran it. Cells are ordered seed-major (all regimes and depths
of seed 0 first), so a sweep stopped early already holds a complete picture for its first seeds.

Re-running the same command continues the sweep: a cell marked done is skipped, a cell that was
running when the sweep died resumes from its newest checkpoint (the loops' resume), a failed cell
is skipped unless `retry_failed`. A cell whose stored request differs from the new one only in its
step budget is resumed with the new budget; any other difference is an error naming the fields.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from crlkit import files
from crlkit import metric_names as names
from crlkit.config import LearnerConfig, from_dict, to_dict
from crlkit.exit_codes import INTERRUPTED, PREEMPTED, RunStopped
from crlkit.experiments.grid import CellPlan, SweepConfig, SweepError, expand_grid
from crlkit.runs import rundir
from crlkit.runs.sinks import TrackingConfig
from crlkit.train import offline as offline_loop
from crlkit.train import online as online_loop

SWEEP_FILE = "sweep.json"
CELLS_DIR = "cells"
LOGS_DIR = "logs"
FAILED_FILE = "failed.json"
# A cell whose request differs from the stored one only here is resumed with the new budget.
BUDGET_FIELDS = ("online.steps", "offline.steps")


class Diverged(RuntimeError):
    """A cell whose logged metrics or final numbers are not finite."""


# ---------------------------------------------------------------------------------------------
# Cell folders on disk


def record_path(run_dir: Path) -> Path:
    """The sweep's record of the cell whose run dir is `run_dir`: DIR/cells/<cell>.json."""
    return run_dir.parent / CELLS_DIR / f"{run_dir.name}.json"


def cell_state(path: Path, plan: CellPlan) -> str:
    """What to do with a cell's run dir: 'new', 'resume', 'extend', 'done', 'failed' or 'restart'.

    Raises SweepError when the folder was not made by a sweep, or holds a cell asked with other
    settings (its failed attempts excepted: those just start over).
    """
    stored = files.read_json(record_path(path))
    if stored is None:
        if not path.exists() or (path.is_dir() and not any(path.iterdir())):
            return "new"
        raise SweepError(
            f"{path} exists but is not a cell of this sweep (no {CELLS_DIR}/{path.name}.json); "
            f"choose another --out"
        )
    diff = rundir.config_diff(stored.get("request", {}), plan.request())
    budget_only = all(d.split(" ")[0] in BUDGET_FIELDS for d in diff)
    status = stored.get("status")
    if diff and not budget_only:
        if status == "failed":
            return "restart"
        raise SweepError(
            f"cell {path} was run with other settings ({'; '.join(diff)}); "
            f"use the same flags or another --out"
        )
    if status == "failed":
        return "failed" if not diff else "restart"
    if not (path / rundir.CONFIG_FILE).is_file():
        return "restart"  # died before the loop wrote its config: nothing to keep
    if status == "done" and (path / rundir.SUMMARY_FILE).is_file():
        return "extend" if diff else "done"
    return "resume"


def _write_record(
    path: Path, plan: CellPlan, status: str, wall: float, attempts: int, interval: list
) -> None:
    record = {
        "cell": {k: v for k, v in dataclasses.asdict(plan.cell).items() if k != "name"},
        "status": status,
        "attempts": attempts,
        "wall_seconds": round(wall, 3),
        # Unix times of the last attempt's start and end (end: None while running).
        "started": interval[0],
        "ended": interval[1],
        "process": os.getpid(),
        "request": plan.request(),
    }
    target = record_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    files.atomic_write_json(target, record)


# ---------------------------------------------------------------------------------------------
# Running one cell


def train_cell(plan: CellPlan, path: Path, resume: bool, echo: Callable[[str], None]) -> dict:
    """Train one cell through the entry point its regime's CLI command uses; returns the summary."""
    if plan.cell.regime == "online":
        return online_loop.train(
            plan.run,
            plan.learner,
            path,
            resume=resume,
            progress=False,
            tracking=plan.tracking,
            echo=echo,
        )
    cfg = dataclasses.replace(plan.run, out=str(path))
    return offline_loop.run(
        cfg, plan.learner, resume=resume, progress=False, tracking=plan.tracking, echo=echo
    )


def nonfinite_problem(path: Path, summary: dict[str, Any]) -> str | None:
    """Where a finished run's numbers stopped being finite ('critic/loss at step 300'), or None.

    Non-finite values are stored as null in metrics.jsonl and summary.json (strict JSON).
    """
    for line in (path / rundir.METRICS_JSONL).read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        bad = sorted(k for k, v in event.items() if v is None or _nonfinite(v))
        if bad:
            return f"non-finite {', '.join(bad)} at step {event.get('step')}"
    bad = sorted(k for k, v in summary.items() if "success" in k and (v is None or _nonfinite(v)))
    return f"non-finite final {', '.join(bad)}" if bad else None


def _nonfinite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def run_cell(plan: CellPlan, path: Path, resume: bool, echo: Callable[[str], None]) -> dict:
    """Run (or resume) one cell; a failure is recorded in failed.json, never raised.

    Returns {"status": "done" | "failed", "reason": ..., "summary": ..., "seconds": ...}.
    KeyboardInterrupt, a preempted or interrupted `RunStopped` and other BaseExceptions propagate
    (the cell stays `running`, so the next run of the sweep resumes it).
    """
    stored = files.read_json(record_path(path)) or {}
    wall0, attempts = float(stored.get("wall_seconds", 0.0)), int(stored.get("attempts", 0)) + 1
    started = time.time()
    _write_record(path, plan, "running", wall0, attempts, [started, None])
    t0 = time.perf_counter()
    try:
        summary = train_cell(plan, path, resume, lambda line: echo(f"    {line}"))
        problem = nonfinite_problem(path, summary)
        if problem:
            raise Diverged(problem)
    except RunStopped as stop:
        if stop.exit_code in (PREEMPTED, INTERRUPTED):
            raise
        return _record_failure(plan, path, stop, wall0, attempts, started, t0)
    except Exception as err:  # any failure of one cell is recorded; the sweep goes on
        return _record_failure(plan, path, err, wall0, attempts, started, t0)
    finally:
        _release_compiled_programs()
    seconds = time.perf_counter() - t0
    _write_record(path, plan, "done", wall0 + seconds, attempts, [started, time.time()])
    return {"status": "done", "summary": summary, "seconds": seconds}


def _record_failure(
    plan: CellPlan, path: Path, err: Exception, wall0: float, attempts: int, started, t0
) -> dict:
    """failed.json and a `failed` record for a cell whose run raised; the outcome dict.

    Called inside the `except` block (the traceback is the one being handled).
    """
    seconds = time.perf_counter() - t0
    reason = f"{type(err).__name__}: {err}".splitlines()[0]
    failure = {
        "reason": reason,
        "type": type(err).__name__,
        "time": time.time(),
        "traceback": traceback.format_exc(),
    }
    path.mkdir(parents=True, exist_ok=True)
    files.atomic_write_json(path / FAILED_FILE, failure)
    _write_record(path, plan, "failed", wall0 + seconds, attempts, [started, time.time()])
    return {"status": "failed", "reason": reason, "seconds": seconds}


def _release_compiled_programs() -> None:
    """Drop JAX's caches between cells: jitted evaluators keep each cell's env alive otherwise."""
    import jax

    jax.clear_caches()


# ---------------------------------------------------------------------------------------------
# The sweep


@dataclasses.dataclass(frozen=True)
class CellTask:
    """A cell to run now: its plan, its run dir, whether it resumes, and its '[3/8] name' head."""

    plan: CellPlan
    path: Path
    resume: bool
    head: str
    label: str = ""  # prefix of the cell's name in a result (crlkit reproduce: "<row>/")


@dataclasses.dataclass
class SweepResult:
    """Per-cell outcome names: done (ran now), skipped (done before), failed (now or before),
    stopped (its process ended without finishing it: resumable by running the sweep again)."""

    out: Path
    done: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)
    failed: dict[str, str] = dataclasses.field(default_factory=dict)
    stopped: dict[str, str] = dataclasses.field(default_factory=dict)

    def count(self) -> int:
        return len(self.done) + len(self.skipped) + len(self.failed) + len(self.stopped)


# A launcher runs tasks and yields (task, outcome) as each cell ends; outcome as `run_cell`'s,
# or {"status": "stopped", "reason": ...} for a cell process that ended without finishing.
Launcher = Callable[[list[CellTask], Callable[[str], None]], Iterator[tuple[CellTask, dict]]]


def run_inline(tasks: list[CellTask], echo: Callable[[str], None]):
    """The inline launcher: every cell in this process, one after the other."""
    for task in tasks:
        echo(f"{task.head}: {'resuming' if task.resume else 'starting'}")
        yield task, run_cell(task.plan, task.path, task.resume, echo)


def run_sweep(
    sweep: SweepConfig,
    learner: LearnerConfig,
    online: Any = None,
    offline: Any = None,
    *,
    tracking: TrackingConfig | None = None,
    command: str = "",
    echo: Callable[[str], None] = print,
    launcher: Launcher = run_inline,
    launcher_name: str = "inline",
) -> SweepResult:
    """Run every cell of the grid not done yet; returns what happened to each.

    Args:
      sweep, learner, online, offline: the grid and the base configs (see `expand_grid`).
      tracking: TensorBoard / W&B for every cell (see `expand_grid`); kept in sweep.json.
      command: the command line that started the sweep (recorded in sweep.json for the report).
      echo: where one line per cell goes.
      launcher, launcher_name: where the cells run (launchers.py; recorded in sweep.json).

    Raises SweepError before anything runs when the grid or the sweep folder is unusable.
    """
    tasks, result = prepare_sweep(
        sweep,
        learner,
        online,
        offline,
        tracking=tracking,
        command=command,
        echo=echo,
        launcher_name=launcher_name,
    )
    collect(launcher(tasks, echo), result, echo)
    return result


def prepare_sweep(
    sweep: SweepConfig,
    learner: LearnerConfig,
    online: Any = None,
    offline: Any = None,
    *,
    tracking: TrackingConfig | None = None,
    command: str = "",
    echo: Callable[[str], None] = print,
    launcher_name: str = "inline",
    label: str = "",
) -> tuple[list[CellTask], SweepResult]:
    """Check every cell's folder, write sweep.json, clear failed attempts to be re-run; returns the
    cells to run and a result holding the skipped ones. `label` prefixes cell names in lines."""
    out = Path(sweep.out)
    plans = expand_grid(sweep, learner, online, offline, tracking)
    if out.exists() and not out.is_dir():
        raise SweepError(f"--out {out} is a file, not a directory")
    states = {p.cell.name: cell_state(out / p.cell.name, p) for p in plans}
    before = (files.read_json(out / SWEEP_FILE) or {}).get("launcher")
    if before and before != launcher_name:
        echo(
            f"{out} was run with --launcher {before}; continuing with {launcher_name} "
            f"(each cell keeps its state)"
        )
    out.mkdir(parents=True, exist_ok=True)
    _write_manifest(out, sweep, (learner, online, offline), plans, command, launcher_name)
    result, tasks = SweepResult(out), []
    for i, plan in enumerate(plans, 1):
        name = plan.cell.name
        state = states[name]
        head = f"[{i}/{len(plans)}] {label}{name}"
        if state == "done" or (state == "failed" and not sweep.retry_failed):
            _skip(out / name, head, name, state, result, echo)
            continue
        if state in ("restart", "failed") and (out / name).exists():
            shutil.rmtree(out / name)  # a failed or never-configured attempt of this sweep
        tasks.append(CellTask(plan, out / name, state in ("resume", "extend"), head, label))
    return tasks, result


def collect(outcomes, result: SweepResult, echo: Callable[[str], None]) -> None:
    """Record each (task, outcome) a launcher yields in `result`, one line each."""
    for task, outcome in outcomes:
        name = task.label + task.plan.cell.name
        if outcome["status"] == "failed":
            result.failed[name] = outcome["reason"]
            echo(f"{task.head}: FAILED after {outcome['seconds']:.0f} s: {outcome['reason']}")
        elif outcome["status"] == "stopped":
            result.stopped[name] = outcome["reason"]
            echo(f"{task.head}: stopped ({outcome['reason']}); run the sweep again to resume it")
        else:
            result.done.append(name)
            echo(
                f"{task.head}: done in {outcome['seconds']:.0f} s; {_headline(outcome['summary'])}"
            )


def load_plans(out: str | Path) -> list[CellPlan]:
    """The cells of the sweep in `out`, rebuilt from its sweep.json (what a cell process runs)."""
    from crlkit.train.offline.config import OfflineConfig
    from crlkit.train.online.config import OnlineConfig

    manifest = files.read_json(Path(out) / SWEEP_FILE)
    if manifest is None:
        raise SweepError(f"{out} holds no readable {SWEEP_FILE}: not a sweep directory")
    stored = manifest["sweep"]
    sweep = from_dict(
        SweepConfig, {k: tuple(v) if isinstance(v, list) else v for k, v in stored.items()}
    )
    base = manifest["base"]
    learner = from_dict(LearnerConfig, base["learner"])
    online = from_dict(OnlineConfig, base["online"]) if base.get("online") else None
    offline = from_dict(OfflineConfig, base["offline"]) if base.get("offline") else None
    stored_tracking = manifest.get("tracking") or {}
    tags = tuple(stored_tracking.pop("tags", ()))
    tracking = from_dict(TrackingConfig, {**stored_tracking, "tags": tags})
    return expand_grid(sweep, learner, online, offline, tracking)


def _skip(path: Path, head: str, name: str, state: str, result: SweepResult, echo) -> None:
    if state == "done":
        result.skipped.append(name)
        echo(f"{head}: already done, skipped")
        return
    reason = (files.read_json(path / FAILED_FILE) or {}).get("reason", "unknown")
    result.failed[name] = reason
    echo(f"{head}: failed before ({reason}); skipped (--retry-failed runs it again)")


def _headline(summary: dict[str, Any]) -> str:
    """'eval_tasks/success 0.800' (OGBench's tasks when evaluated, else fresh goals)."""
    found = names.headline_success(summary)
    return f"{found[0]} {found[1]:.3f}" if found else "no success metric"


def _write_manifest(out, sweep, bases, plans, command, launcher) -> None:
    learner, online, offline = bases
    manifest = {
        "command": command,
        "launcher": launcher,
        "sweep": to_dict(sweep),
        "base": {
            "learner": to_dict(learner),
            "online": to_dict(online) if online is not None else None,
            "offline": to_dict(offline) if offline is not None else None,
        },
        "tracking": to_dict(plans[0].tracking) if plans else None,
        "cells": [p.cell.name for p in plans],
        "written": time.time(),
    }
    files.atomic_write_json(out / SWEEP_FILE, manifest)
