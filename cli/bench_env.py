"""`crlkit bench env`: env steps/s and physics steps/s of one env on one backend."""

from __future__ import annotations

import click
from crlkit.cli.helpers import usage_errors
from crlkit.cli.options import build_config, config_options

from crlkit.bench.env import BenchEnvConfig


@click.command("env")
@config_options(BenchEnvConfig)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write the result row (JSON object) here.",
)
def bench_env(json_path: str | None, **options) -> None:
    """Env and physics steps/s, against single-thread MuJoCo C measured in the same run."""
    from crlkit.bench.env import run_bench
    from crlkit.files import atomic_write_json

    cfg = usage_errors(lambda: build_config(BenchEnvConfig, options))
    result = usage_errors(lambda: run_bench(cfg, log=click.echo))
    if json_path:
        atomic_write_json(json_path, result)
        click.echo(f"wrote {json_path}")
