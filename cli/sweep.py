"""`crlkit sweep`: a depth grid over the online and offline regimes."""

from __future__ import annotations

import dataclasses
from typing import Any

import click
from crlkit.cli.helpers import command_line, echo_for, usage_errors
from crlkit.cli.options import build_config, config_options

from crlkit.config import LearnerConfig
from crlkit.experiments.grid import SweepConfig
from crlkit.experiments.launchers import SlurmConfig
from crlkit.runs.sinks import TrackingConfig
from crlkit.train.offline.config import OfflineConfig
from crlkit.train.online.config import PRESETS, OnlineConfig

# Grid axes and per-cell values the sweep sets itself; every other field becomes a flag.
ONLINE_SKIP = ("env", "seed")
OFFLINE_SKIP = ("dataset", "seed", "out")
# width: SweepConfig's --width (one value for every cell; default each regime's own).
LEARNER_SKIP = ("critic_depth", "actor_depth", "actor_loss", "bc_alpha", "width")
ONLINE_PRESETS = ("quickstart", "paper")
AXIS_FLAGS = (  # (widths, width): SweepConfig checks that pair itself
    ("batch_sizes", "online_batch_size"),
    ("batch_sizes", "offline_batch_size"),
)


@click.command("sweep")
@click.option("--env", default=None, help="Env of the online regime (see: crlkit envs).")
@click.option("--dataset", default=None, help="Dataset of the offline regime (crlkit datasets).")
@config_options(SweepConfig)
@config_options(TrackingConfig, skip=("name",))
@click.option(
    "--preset",
    type=click.Choice(ONLINE_PRESETS),
    default="quickstart",
    show_default=True,
    help="Defaults of the online settings and the learner, as in "
    "crlkit online (the defaults below show both presets where they differ).",
)
@click.option(
    "--report/--no-report",
    default=True,
    show_default=True,
    help="Write report.md and the plots into --out when the sweep ends.",
)
@click.option("--quiet", is_flag=True, help="No per-cell lines (errors still print).")
@config_options(SlurmConfig, "slurm")
@config_options(OnlineConfig, "online", ONLINE_SKIP, {n: PRESETS[n][0] for n in ONLINE_PRESETS})
@config_options(OfflineConfig, "offline", OFFLINE_SKIP)
@config_options(
    LearnerConfig, "", LEARNER_SKIP, {n: PRESETS[n][1] for n in ONLINE_PRESETS}, depth=False
)
def sweep(**options: Any) -> None:
    """Run a grid of CRL runs, online and offline, over depths (and widths, batch sizes, seeds).

    Every cell runs through the same code as `crlkit online` / `crlkit offline` into its own
    run dir, DIR/<regime>-d<depth>-s<seed>. Re-running the same command skips finished cells and
    resumes the one that was interrupted; a cell that fails (an error, or non-finite losses) is
    recorded in its failed.json and the sweep goes on. --launcher picks where cells run: in this
    process, as --jobs processes at once, or as a Slurm job array. E.g. (docs/sweep.md):

    \b
        crlkit sweep --env pointmaze-medium --dataset pointmaze-medium-navigate-sample
        --depths 4,16 --seeds 2 --online-steps 102400 --offline-steps 2000 --out runs/sweep

    Online flags are --online-<name> (as in crlkit online), offline flags --offline-<name>
    (as in crlkit offline); learner flags are shared by both regimes. --actor-depth keeps the
    actor at that depth in every cell (default: the cell's depth).
    """
    from crlkit.experiments.launchers import make_launcher
    from crlkit.experiments.report import write_report
    from crlkit.experiments.sweep import run_sweep

    command = command_line(click.get_current_context(), "sweep")
    for axis, single in AXIS_FLAGS:
        if options.get(axis) and options.get(single) is not None:
            flags = (f"--{axis.replace('_', '-')}", f"--{single.replace('_', '-')}")
            raise click.UsageError(f"give {flags[0]} (a grid axis) or {flags[1]}, not both")
    echo = echo_for(options["quiet"])
    tracking = usage_errors(lambda: build_config(TrackingConfig, options))
    grid, learner, online, offline, slurm = usage_errors(lambda: sweep_configs(options))
    name, launcher = usage_errors(lambda: make_launcher(grid, slurm, echo))
    result = usage_errors(
        lambda: run_sweep(
            grid,
            learner,
            online,
            offline,
            tracking=tracking,
            command=command,
            echo=echo,
            launcher=launcher,
            launcher_name=name,
        )
    )
    finish(result, options["report"], echo, write_report)


def finish(result, report: bool, echo, write_report) -> None:
    """The report, the closing count line, and exit code 1 when cells failed or stopped."""
    if report:
        echo(f"report: {write_report(result.out, echo=echo)}")
    click.echo(
        f"{result.count()} cells in {result.out}: {len(result.done)} ran, "
        f"{len(result.skipped)} were done before, {len(result.failed)} failed"
        + (f", {len(result.stopped)} stopped" if result.stopped else "")
    )
    if result.failed:
        first = next(iter(result.failed))
        raise click.ClickException(
            f"{len(result.failed)} cell(s) failed, e.g. {first}: {result.failed[first]} "
            f"(reasons in {result.out}/<cell>/failed.json)"
        )
    if result.stopped:
        first = next(iter(result.stopped))
        raise click.ClickException(
            f"{len(result.stopped)} cell(s) stopped before finishing, e.g. {first}: "
            f"{result.stopped[first]}; run the same command again to resume them"
        )


def sweep_configs(options: dict[str, Any]):
    """(SweepConfig, learner, online or None, offline or None, SlurmConfig) from the flags."""
    from crlkit.experiments.grid import SweepError
    from crlkit.experiments.launchers import read_slurm_file

    online_base, learner_base = PRESETS[options["preset"]]
    grid = build_config(SweepConfig, options)
    slurm_file = options.get("slurm_config")
    slurm_base = SlurmConfig(**read_slurm_file(slurm_file)) if slurm_file else None
    slurm = build_config(SlurmConfig, options, slurm_base, prefix="slurm")
    learner = build_config(LearnerConfig, options, learner_base)
    online = offline = None
    if "online" in grid.regimes:
        if not options["env"]:
            raise SweepError("the online regime needs --env (see: crlkit envs)")
        base = dataclasses.replace(online_base, env=options["env"])
        online = build_config(OnlineConfig, options, base, prefix="online")
    if "offline" in grid.regimes:
        if not options["dataset"]:
            raise SweepError("the offline regime needs --dataset (see: crlkit datasets)")
        base = OfflineConfig(dataset=options["dataset"])
        offline = build_config(OfflineConfig, options, base, prefix="offline")
    return grid, learner, online, offline, slurm
