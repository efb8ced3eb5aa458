"""`crlkit bench plan`: memory and FLOPs of a planned online run, before running it."""

from __future__ import annotations

import click
from crlkit.cli.helpers import usage_errors
from crlkit.cli.options import build_config, config_options

from crlkit.bench.plan import BenchPlanConfig


@click.command("plan")
@config_options(BenchPlanConfig)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the rows (one object per depth) here.",
)
def bench_plan(json_path: str | None, **options) -> None:
    """Compile the real online epoch from shapes on this backend (nothing is allocated) and print
    what the device must hold (run state incl. the replay buffer, plus XLA's scratch) and the
    SGD FLOPs per env step, per depth. E.g. the paper's humanoid at depth 1024:

        crlkit bench plan --env humanoid --depths 1024
    """
    from crlkit import files
    from crlkit.bench.plan import run_plan

    cfg = usage_errors(lambda: build_config(BenchPlanConfig, options))
    rows = usage_errors(lambda: run_plan(cfg, log=click.echo))
    if json_path:
        files.atomic_write_json(json_path, {"config": cfg, "rows": rows})
        click.echo(f"wrote {json_path}")
