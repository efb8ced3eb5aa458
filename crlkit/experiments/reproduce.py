"""`crlkit reproduce TABLE`: a published table as sweeps, and a report with its numbers beside ours.

```
OUT/TABLE/
  reproduce.json        the table, its rows, the launcher, the device kind, the command
  <row>/                a sweep dir per row (docs/sweep.md): sweep.json, cells/, a run dir per cell
  report.md             per row and depth: published / crlkit / difference / within spread / hours
```

Tables (the published numbers are data: reference.json, each with its source):
- `table1`: the paper's 10 online tasks at depth 4 and 64 with the paper's settings (`crlkit
  online --preset paper`), scored by time at goal (`eval/steps_at_goal`).
- `ogbench-crl`: OGBench's CRL agent (`crlkit offline --preset ogbench`: OGBench's 3-layer MLP,
  its 1M SGD steps and 5 tasks x 50 episodes) on the navigate datasets present on this machine,
  scored by success in percent.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crlkit import files
from crlkit.config import LearnerConfig, option_field
from crlkit.experiments.grid import LAUNCHERS, CellPlan, SweepConfig, SweepError, expand_grid
from crlkit.experiments.report_data import group_runs, load_runs
from crlkit.experiments.sweep import CellTask, SweepResult, collect, prepare_sweep

REFERENCE_FILE = Path(__file__).with_name("reference.json")
TABLES = ("table1", "ogbench-crl")
MANIFEST = "reproduce.json"
REPORT = "report.md"


def load_reference() -> dict[str, Any]:
    """The published numbers (reference.json), by table."""
    return json.loads(REFERENCE_FILE.read_text())


@dataclasses.dataclass(frozen=True)
class ReproduceConfig:
    """Which part of a table to run, where, and on what launcher."""

    out: str = option_field("runs/reproduce", "Folder of reproductions: OUT/TABLE/<row>/.")
    rows: tuple[str, ...] = option_field(
        (), "Rows to run (table1: env names; ogbench-crl: dataset names); empty: every row."
    )
    depths: tuple[int, ...] = option_field(
        (), "Depths to run; empty: the table's (table1: 4,64; ogbench-crl: OGBench's 3 layers)."
    )
    seeds: int = option_field(3, "Seeds 0 .. seeds-1 of every row and depth.")
    steps: int | None = option_field(
        None,
        "Budget of every cell; empty: the table's (table1: the paper preset's 100,000,000 env "
        "steps; ogbench-crl: OGBench's 1,000,000 SGD steps).",
    )
    launcher: str = option_field("auto", "Where cells run, as crlkit sweep --launcher.", LAUNCHERS)
    jobs: int = option_field(1, "Cell processes at once with --launcher local (crlkit sweep).")
    retry_failed: bool = option_field(False, "Run cells that failed before again.")


@dataclasses.dataclass(frozen=True)
class RowSweep:
    """One row of a table as a sweep: its grid, base configs and published numbers."""

    row: str
    published: dict[int, float]  # depth -> the published figure (ogbench-crl: its one depth)
    sweep: SweepConfig
    learner: LearnerConfig
    online: Any = None
    offline: Any = None

    def plans(self) -> list[CellPlan]:
        return expand_grid(self.sweep, self.learner, self.online, self.offline)


def check_table(table: str) -> None:
    if table not in TABLES:
        raise SweepError(f"unknown table {table!r}; valid: {', '.join(TABLES)}")


def valid_rows(table: str) -> list[str]:
    """The rows a table can run here (ogbench-crl: the navigate datasets in crlkit's catalog)."""
    rows = list(load_reference()[table]["rows"])
    if table == "ogbench-crl":
        from crlkit.data.catalog import load_catalog

        cards = load_catalog()
        rows = [r for r in rows if r in cards and cards[r].dataset_type == "navigate"]
    return rows


def plan_table(table: str, cfg: ReproduceConfig) -> list[RowSweep]:
    """Every row of the table (or of --rows) as a sweep; SweepError (one line) on a bad name."""
    check_table(table)
    valid = valid_rows(table)
    for row in cfg.rows:
        if row not in valid:
            raise SweepError(f"unknown row {row!r} of {table}; valid: {', '.join(valid)}")
    reference = load_reference()[table]["rows"]
    plan_row = _table1_row if table == "table1" else _ogbench_row
    rows = [plan_row(row, reference[row], cfg, table) for row in (cfg.rows or valid)]
    for row in rows:
        row.plans()  # every cell's configs validate (a one-line error before anything runs)
    return rows


def _grid(row: str, cfg: ReproduceConfig, table: str, regime: str, depths) -> SweepConfig:
    return SweepConfig(
        out=str(Path(cfg.out) / table / row),
        regimes=(regime,),
        depths=tuple(depths),
        seeds=cfg.seeds,
        launcher=cfg.launcher,
        jobs=cfg.jobs,
        retry_failed=cfg.retry_failed,
    )


def _table1_row(row: str, reference: dict, cfg: ReproduceConfig, table: str) -> RowSweep:
    from crlkit.train.online.config import PRESETS

    online, learner = PRESETS["paper"]
    online = dataclasses.replace(online, env=row)
    if cfg.steps is not None:
        online = dataclasses.replace(online, steps=cfg.steps)
    published = {int(d): float(v) for d, v in reference["depths"].items()}
    depths = cfg.depths or tuple(sorted(published))
    return RowSweep(row, published, _grid(row, cfg, table, "online", depths), learner, online)


def _ogbench_row(row: str, reference: dict, cfg: ReproduceConfig, table: str) -> RowSweep:
    from crlkit.train.offline.config import OfflineConfig, preset_learner

    learner = preset_learner("ogbench")
    offline = OfflineConfig(dataset=row, preset="ogbench")
    if cfg.steps is not None:
        offline = dataclasses.replace(offline, steps=cfg.steps)
    ogbench_depth = learner.network.critic_depth
    depths = cfg.depths or (ogbench_depth,)
    published = {ogbench_depth: float(reference["success"])}
    sweep = _grid(row, cfg, table, "offline", depths)
    return RowSweep(row, published, sweep, learner, offline=offline)


def present_rows(rows: list[RowSweep], echo: Callable[[str], None]) -> list[RowSweep]:
    """ogbench-crl rows whose dataset files are on this machine (others: one line each)."""
    from crlkit.data.catalog import find_card, local_path

    kept = []
    for row in rows:
        if row.offline is None or local_path(find_card(row.row)[0]) is not None:
            kept.append(row)
        else:
            echo(f"{row.row}: dataset files not present here, row skipped (see: crlkit datasets)")
    if not kept:
        raise SweepError(
            "none of the rows' datasets is present on this machine; "
            "crlkit datasets lists them and where their files go"
        )
    return kept


# ---------------------------------------------------------------------------------------------
# Running


def run_table(
    table: str,
    rows: list[RowSweep],
    launcher,
    launcher_name: str,
    *,
    command: str,
    device: str,
    echo: Callable[[str], None] = print,
) -> SweepResult:
    """Every row's cells through one launcher (cells of all rows share it); returns the counts."""
    table_dir = Path(rows[0].sweep.out).parent
    tasks: list[CellTask] = []
    result = SweepResult(table_dir)
    for row in rows:
        row_tasks, row_result = prepare_sweep(
            row.sweep,
            row.learner,
            row.online,
            row.offline,
            command=command,
            echo=echo,
            launcher_name=launcher_name,
            label=f"{row.row}/",
        )
        tasks += row_tasks
        result.skipped += [f"{row.row}/{n}" for n in row_result.skipped]
        result.failed.update({f"{row.row}/{n}": r for n, r in row_result.failed.items()})
    manifest = {
        "table": table,
        "rows": [r.row for r in rows],
        "launcher": launcher_name,
        "device": device,
        "command": command,
        "written": time.time(),
    }
    files.atomic_write_json(table_dir / MANIFEST, manifest)
    collect(launcher(tasks, echo), result, echo)
    return result


# ---------------------------------------------------------------------------------------------
# The report


def row_numbers(table: str, row: RowSweep) -> list[dict[str, Any]]:
    """Per depth: published, crlkit mean / std / seeds, difference, within spread, hours."""
    path = Path(row.sweep.out)
    try:
        groups = {g.depth: g for g in group_runs(load_runs(path))} if path.is_dir() else {}
    except ValueError:  # no runs yet
        groups = {}
    scale = 100.0 if table == "ogbench-crl" else 1.0  # success: fraction -> percent
    field = "success" if table == "ogbench-crl" else "steps_at_goal"
    lines = []
    for depth in row.sweep.depths:
        group = groups.get(depth)
        stat = group.stat(field) if group else None
        wall = sum(r.wall_seconds or 0.0 for r in group.runs) if group else 0.0
        entry = {
            "row": row.row,
            "depth": depth,
            "published": row.published.get(depth),
            "seeds": f"{len(group.done)}/{len(group.runs)}" if group else "0/0",
            "hours": wall / 3600,
        }
        if stat is not None:
            mean, std, n = stat[0] * scale, stat[1] * scale, stat[2]
            entry.update(crlkit=mean, std=std, n=n)
            if entry["published"] is not None:
                entry["difference"] = mean - entry["published"]
                entry["within"] = abs(entry["difference"]) <= std if n > 1 else None
        lines.append(entry)
    return lines


def _num(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def report_text(table: str, rows: list[RowSweep], device: str, command: str) -> str:
    """report.md: the published numbers beside crlkit's, per row and depth."""
    ref = load_reference()[table]
    unit = "GPU hours" if device == "gpu" else "CPU hours"
    lines = [
        f"# Reproduction: {ref['title']}",
        "",
        f"Published numbers: {ref['source']}.",
        "",
        f"Metric: `{ref['metric']}` ({ref['unit']}). crlkit: mean ± sample std over the "
        "finished seeds. Difference: crlkit − published. Within spread: the published "
        "figure lies within one std of crlkit's mean (needs 2+ seeds). Hours: the cells' "
        f"wall-clock time summed (compile, training and evaluation) on this {device.upper()}.",
        "",
    ]
    if command:
        lines += ["Made with:", "", "```", command, "```", ""]
    lines += [
        f"| row | depth | published | crlkit | difference | within spread | seeds done | {unit} |",
        "|---|---:|---:|---|---:|---|---|---:|",
    ]
    for row in rows:
        for e in row_numbers(table, row):
            crl = (
                "–"
                if "crlkit" not in e
                else (_num(e["crlkit"], 2) + (f" ± {_num(e['std'], 2)}" if e["n"] > 1 else ""))
            )
            within = {True: "yes", False: "no", None: "–"}[e.get("within")]
            lines.append(
                f"| {e['row']} | {e['depth']} | {_num(e['published'], 2)} | {crl} "
                f"| {_num(e.get('difference'), 2)} | {within} | {e['seeds']} "
                f"| {e['hours']:.3f} |"
            )
    lines += [
        "",
        "Each row's sweep dir (`<row>/`) holds its run dirs, cell records and logs; "
        "`crlkit report <row dir>` draws its plots.",
        "",
    ]
    return "\n".join(lines)


def write_table_report(table: str, rows: list[RowSweep], device: str, command: str = "") -> Path:
    """OUT/TABLE/report.md (written atomically); returns its path."""
    path = Path(rows[0].sweep.out).parent / REPORT
    files.atomic_write_bytes(path, report_text(table, rows, device, command).encode())
    return path
