"""`crlkit bench env`: env steps/s and physics steps/s of one env on one backend."""

from __future__ import annotations

import click

from crlkit.envs.backends import BACKEND_CHOICES


@click.command("env")
@click.option(
    "--env",
    "env",
    default="antmaze-large",
    show_default=True,
    help="Registered env name (see `crlkit envs`).",
)
@click.option(
    "--backend",
    type=click.Choice(BACKEND_CHOICES),
    default="auto",
    show_default=True,
    help="Physics backend; auto: native on CPU, mjx on GPU/TPU.",
)
@click.option(
    "--num-envs", type=int, default=256, show_default=True, help="Envs stepped together (vmapped)."
)
@click.option(
    "--steps",
    type=int,
    default=100,
    show_default=True,
    help="Control steps per env in one timed call.",
)
@click.option(
    "--repeats",
    type=int,
    default=3,
    show_default=True,
    help="Timed calls after the compiling one (the median is reported).",
)
@click.option(
    "--baseline-envs",
    type=int,
    default=16,
    show_default=True,
    help="Envs whose visited states the single-thread MuJoCo C reference replays.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for resets and actions.")
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write the result row (JSON object) here.",
)
def bench_env(json_path: str | None, **options) -> None:
    """Env and physics steps/s, against single-thread MuJoCo C measured in the same run."""
    from crlkit.bench.env import BenchEnvConfig, run_bench, write_json

    try:
        cfg = BenchEnvConfig(**options)
        result = run_bench(cfg, log=click.echo)
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    if json_path:
        write_json(json_path, result)
        click.echo(f"wrote {json_path}")
