"""`crlkit collect`: roll out a policy in an env and write an OGBench or Minari dataset."""

from __future__ import annotations

import click

from crlkit.config import click_options, config_from_cli
from crlkit.data.collect import CollectConfig


@click.command("collect")
@click_options(CollectConfig)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def collect(quiet: bool, **options) -> None:
    """Roll out a policy and write a goal-conditioned dataset (see docs/datasets.md).

    \b
    The shipped sample was made with:
    crlkit collect --env pointmaze-medium --policy expert --style navigate \\
      --steps 200000 --episode-length 1000 --noise 0.5 --num-envs 55 --seed 0 \\
      --format ogbench --out datasets/pointmaze-medium-navigate-sample.npz
    """
    from crlkit.data import collect as collect_lib

    cfg = config_from_cli(CollectConfig, options)
    try:
        summary = collect_lib.collect(cfg, progress=not quiet)
    except ValueError as err:  # bad env/policy/output: one line, exit code 2
        raise click.UsageError(str(err)) from None
    click.echo(
        f"wrote {', '.join(summary['paths'])}: {summary['episodes']} episodes, "
        f"{summary['rows']:,} rows; {summary['steps_per_second']:,.0f} env steps/s "
        f"({summary['backend']} backend)"
    )
