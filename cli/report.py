"""`crlkit report DIR`: summarise a sweep directory into report.md and plots."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("report")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Where report.md and the PNGs go (default: DIRECTORY).",
)  # fmt: skip
def report(directory: Path, out: Path | None) -> None:
    """Summarise a sweep directory (or any folder of run dirs) into report.md and PNG plots.

    report.md holds a table regime x depth: success mean ± std over seeds, time at goal,
    parameters, wall seconds and env / SGD steps per second; the plots show final success vs
    depth per regime (the headline), learning curves per depth, and cost vs depth.
    """
    from crlkit.experiments.report import PLOTS, ReportError, write_report

    if not directory.exists():
        raise click.UsageError(f"{directory} does not exist")
    try:
        path = write_report(directory, out)
    except ReportError as err:
        raise click.UsageError(str(err)) from None
    click.echo(f"wrote {path} and {len(PLOTS)} plots")
