"""`crlkit collect`: roll out a policy in an env and write an OGBench or Minari dataset."""

from __future__ import annotations

import click
from crlkit.cli.helpers import usage_errors
from crlkit.cli.options import build_config, config_options

from crlkit.collect.config import CollectConfig


@click.command("collect")
@config_options(CollectConfig)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def collect(quiet: bool, **options) -> None:
    """Roll out a policy and write a goal-conditioned dataset (see docs/datasets.md).

    \b
    The shipped sample was made with:
    crlkit collect --env pointmaze-medium --policy expert --style navigate \\
      --steps 200000 --episode-length 1000 --noise 0.5 --num-envs 55 --seed 0 \\
      --format ogbench --out datasets/pointmaze-medium-navigate-sample.npz
    """
    from crlkit.collect import collect as run_collect

    cfg = usage_errors(lambda: build_config(CollectConfig, options))
    summary = usage_errors(lambda: run_collect(cfg, progress=not quiet))
    click.echo(
        f"wrote {', '.join(summary['paths'])}: {summary['episodes']} episodes, "
        f"{summary['rows']:,} rows; {summary['steps_per_second']:,.0f} env steps/s "
        f"({summary['backend']} backend)"
    )
