"""`crlkit report DIR`: summarise a sweep directory into report.md and plots."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("report")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where report.md and the PNGs go (default: DIRECTORY).",
)
@click.option(
    "--gallery/--no-gallery",
    default=True,
    show_default=True,
    help="Draw each depth's behaviour side by side (runs the seed-0 checkpoints).",
)
def report(directory: Path, out: Path | None, gallery: bool) -> None:
    """Summarise a sweep directory (or any folder of run dirs) into report.md and PNG plots.

    report.md holds a table regime x depth: success mean ± std over seeds, time at goal,
    parameters, wall seconds and env / SGD steps per second; the plots show final success vs
    depth per regime (the headline), learning curves per depth, cost vs depth, and a gallery of
    top-down trajectory maps, one per regime and depth (same starts and goals).
    """
    from crlkit.experiments.report import PLOTS, ReportError, write_report

    if not directory.exists():
        raise click.UsageError(f"{directory} does not exist")
    try:
        path = write_report(directory, out, gallery, echo=lambda s: click.echo(s, err=True))
    except ReportError as err:
        raise click.UsageError(str(err)) from None
    plots = [name for name in PLOTS.values() if (path.parent / name).is_file()]
    click.echo(f"wrote {path} and {len(plots)} plots")
