"""The grid of a sweep: `SweepConfig`, its cells and the configs each cell's run gets."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from crlkit.checks import check_depth
from crlkit.config import NORMS, LearnerConfig, option_field, to_dict
from crlkit.runs.sinks import TrackingConfig
from crlkit.train.offline.config import choose_preset, preset_learner

REGIMES = ("online", "offline")
LAUNCHERS = ("auto", "inline", "local", "slurm")


class SweepError(ValueError):
    """A sweep the user must fix before it can run (bad grid, foreign or changed cell dirs)."""


def _check_ints(name: str, values: Sequence[int], minimum: int = 1) -> None:
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int) or v < minimum]
    if bad:
        raise SweepError(f"{name} must be integers >= {minimum}, got {bad[0]!r}")
    if len(set(values)) != len(values):
        raise SweepError(f"{name} lists a value twice: {list(values)}")


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """The grid and where it goes; the runs' own settings come from the base configs."""

    out: str = option_field("", "Sweep directory: one run dir per cell, plus sweep.json.")
    regimes: tuple[str, ...] = option_field(REGIMES, "Regimes to run: online, offline or both.")
    depths: tuple[int, ...] = option_field(
        (4, 16, 64), "Critic depths (and actor depths, see below)."
    )
    widths: tuple[int, ...] = option_field(
        (), "Widths to sweep; empty: --width, else each regime's own width."
    )
    width: int | None = option_field(
        None,
        "One width for every cell (no grid axis).",
        auto="each regime's learner width, as crlkit online / crlkit offline use it (online: "
        "the preset's; offline: the --offline-preset's, 128 for quickstart, 256 for paper)",
        minimum=1,
    )
    batch_sizes: tuple[int, ...] = option_field(
        (), "Minibatch sizes to sweep; empty: each regime's base batch size."
    )
    norms: tuple[str, ...] = option_field(
        (),
        "Normalisations to sweep (the learner's --norm: layernorm, hyperspherical); empty: the "
        "learner's --norm.",
        NORMS,
    )
    seeds: int = option_field(3, "Seeds 0 .. seeds-1 of every cell.")
    actor_depth: int | None = option_field(
        None, "Actor depth of every cell.", auto="the cell's depth", minimum=1
    )
    retry_failed: bool = option_field(False, "Run cells that failed before again (from scratch).")
    launcher: str = option_field(
        "auto",
        "Where cells run. inline: one after the other in this process; local: --jobs cell "
        "processes at once on this machine (each its own GPUs, or its share of the CPU cores); "
        "slurm: one Slurm job array (pip install 'crlkit[slurm]'; --slurm-* flags); auto: local "
        "with one cell per GPU when several GPUs are visible, else inline.",
        LAUNCHERS,
    )
    jobs: int = option_field(
        1, "Cell processes at once with --launcher local (at most the number of visible GPUs)."
    )

    def __post_init__(self) -> None:
        if not self.out:
            raise SweepError("the sweep needs an output directory (--out DIR)")
        if not self.regimes:
            raise SweepError(f"no regimes given; valid: {', '.join(REGIMES)}")
        for regime in self.regimes:
            if regime not in REGIMES:
                raise SweepError(f"unknown regime {regime!r}; valid: {', '.join(REGIMES)}")
        if len(set(self.regimes)) != len(self.regimes):
            raise SweepError(f"regimes lists a value twice: {list(self.regimes)}")
        if not self.depths:
            raise SweepError("no depths given (e.g. --depths 4,16,64)")
        _check_ints("depths", self.depths)
        _check_ints("widths", self.widths)
        if self.width is not None:
            _check_ints("width", [self.width])
            if self.widths:
                raise SweepError("give --widths (a grid axis) or --width, not both")
        _check_ints("batch sizes", self.batch_sizes)
        for norm in self.norms:
            if norm not in NORMS:
                raise SweepError(f"unknown norm {norm!r}; valid: {', '.join(NORMS)}")
        if len(set(self.norms)) != len(self.norms):
            raise SweepError(f"norms lists a value twice: {list(self.norms)}")
        _check_ints("seeds", [self.seeds])
        if self.actor_depth is not None:
            _check_ints("actor depth", [self.actor_depth])
        if self.launcher not in LAUNCHERS:
            raise SweepError(f"unknown launcher {self.launcher!r}; valid: {', '.join(LAUNCHERS)}")
        if isinstance(self.jobs, bool) or not isinstance(self.jobs, int) or self.jobs < 1:
            raise SweepError(
                f"--jobs must be an integer >= 1 (cell processes at once), got {self.jobs!r}"
            )


@dataclasses.dataclass(frozen=True)
class Cell:
    """One grid point: a regime at a depth, width, batch size, norm and seed; `name` is its
    folder."""

    regime: str
    depth: int
    width: int
    batch_size: int
    seed: int
    name: str
    norm: str = "layernorm"


@dataclasses.dataclass(frozen=True)
class CellPlan:
    """A cell with the configs its run gets (`run` is an OnlineConfig or OfflineConfig)."""

    cell: Cell
    run: Any
    learner: LearnerConfig
    # The sweep's TensorBoard / W&B settings (not part of the request: they label, not define).
    tracking: TrackingConfig = TrackingConfig()

    def request(self) -> dict[str, Any]:
        """What the cell was asked to run (its record; compared when a sweep is re-run)."""
        return {self.cell.regime: to_dict(self.run), "learner": to_dict(self.learner)}


def _regime_learner(learner: LearnerConfig, base: Any, regime: str) -> LearnerConfig:
    """The learner a regime's cells start from: offline presets bring their own."""
    if regime == "offline" and base.preset != "same-as-online":
        return preset_learner(base.preset)
    return learner


def _check_tower_depths(sweep: SweepConfig, learner: LearnerConfig) -> None:
    """Residual towers need depths in multiples of 4 (an MLP tower, e.g. OGBench's, any depth)."""
    if learner.network.tower != "residual":
        return
    for depth in (*sweep.depths, *([sweep.actor_depth] if sweep.actor_depth else [])):
        try:
            check_depth("depths", depth)
        except ValueError as err:
            raise SweepError(str(err)) from None


def cell_name(
    regime: str, depth: int, width: int, batch: int, seed: int, tags: set[str], norm: str = ""
) -> str:
    """`online-d16-s0`; `-w<width>` / `-b<batch>` / `-<norm>` only when those axes were given."""
    name = f"{regime}-d{depth}"
    name += f"-w{width}" if "width" in tags else ""
    name += f"-b{batch}" if "batch" in tags else ""
    name += f"-{norm}" if "norm" in tags else ""
    return f"{name}-s{seed}"


def expand_grid(
    sweep: SweepConfig,
    learner: LearnerConfig,
    online: Any = None,
    offline: Any = None,
    tracking: TrackingConfig | None = None,
) -> list[CellPlan]:
    """Every cell of the grid with its configs, seed-major; ValueError (one line) on bad values.

    Args:
      sweep: the grid.
      learner: the base learner (its actor loss is set per regime: sac online, ddpg_bc offline).
      online: base OnlineConfig (needed when the grid holds the online regime).
      offline: base OfflineConfig with a dataset (needed for the offline regime).
      tracking: TensorBoard / W&B for every cell: each cell is a run named after its folder, in
        the group --group (default: the sweep folder's name).
    """
    bases = {"online": online, "offline": offline}
    for regime in sweep.regimes:
        if bases[regime] is None:
            what = "--env" if regime == "online" else "--dataset"
            raise SweepError(f"the {regime} regime needs {what}")
    if offline is not None:  # the auto preset decided for the dataset, as crlkit offline does
        bases["offline"] = choose_preset(offline)
    for regime in sweep.regimes:
        _check_tower_depths(sweep, _regime_learner(learner, bases[regime], regime))
    tags = {"width"} if sweep.widths else set()
    tags |= {"batch"} if sweep.batch_sizes else set()
    tags |= {"norm"} if sweep.norms else set()
    widths = sweep.widths or (sweep.width,)  # None: each regime's own learner width
    regime_width = {r: _regime_learner(learner, bases[r], r).network.width for r in sweep.regimes}
    tracking = tracking or TrackingConfig()
    if tracking.group is None and tracking.active:
        tracking = dataclasses.replace(tracking, group=Path(sweep.out).resolve().name)
    plans = []
    for seed, width, norm, depth in itertools.product(
        range(sweep.seeds), widths, sweep.norms or (None,), sweep.depths
    ):
        for regime in sweep.regimes:
            cell_width = width or regime_width[regime]
            cell_norm = norm or learner.network.norm  # --norm applies to both regimes
            for batch in sweep.batch_sizes or (bases[regime].batch_size,):
                name = cell_name(regime, depth, cell_width, batch, seed, tags, cell_norm)
                cell = Cell(regime, depth, cell_width, batch, seed, name, cell_norm)
                plan = plan_cell(cell, sweep, learner, bases[regime])
                plans.append(dataclasses.replace(plan, tracking=tracking))
    return plans


def plan_cell(cell: Cell, sweep: SweepConfig, learner: LearnerConfig, base: Any) -> CellPlan:
    """The cell's configs (validated by their dataclasses).

    Online cells train the shared learner with SAC; offline cells the offline preset's agent
    (`--offline-preset`: quickstart, paper or ogbench; same-as-online: the shared learner with
    DDPG+BC), all at the cell's depth and width.
    """
    learner = _regime_learner(learner, base, cell.regime)
    network = dataclasses.replace(
        learner.network,
        width=cell.width,
        norm=cell.norm,
        critic_depth=cell.depth,
        actor_depth=sweep.actor_depth or cell.depth,
    )
    actor_loss = "sac" if cell.regime == "online" else "ddpg_bc"
    lcfg = dataclasses.replace(learner, network=network, actor_loss=actor_loss)
    run = dataclasses.replace(base, seed=cell.seed, batch_size=cell.batch_size)
    return CellPlan(cell, run, lcfg)
