"""`crlkit offline`: train CRL on a fixed OGBench/Minari dataset, evaluated as OGBench does."""

from __future__ import annotations

import click
from crlkit.cli.helpers import (
    QUIET_HELP,
    START_OVER_HELP,
    VIDEO_HELP,
    echo_for,
    training,
    usage_errors,
    write_run_media,
)
from crlkit.cli.options import build_config, config_options

from crlkit import metric_names as names
from crlkit.config import LearnerConfig
from crlkit.train.offline.config import PRESETS, SAMPLE_STEPS, OfflineConfig, preset_learner
from crlkit.train.parallel import DistributedConfig
from crlkit.train.parallel import initialize as join_run

# --alpha (an OfflineConfig field, resolved per dataset family) replaces the learner's --bc-alpha.
PRESET_LEARNERS = {name: preset_learner(name) for name in PRESETS}


@click.command("offline")
@config_options(OfflineConfig)
@config_options(LearnerConfig, skip=("bc_alpha",), presets=PRESET_LEARNERS)
@config_options(DistributedConfig)
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--start-over", is_flag=True, help=START_OVER_HELP)
@click.option("--video", is_flag=True, help=VIDEO_HELP)
@click.option("--quiet", is_flag=True, help=QUIET_HELP)
def offline(resume: bool, start_over: bool, video: bool, quiet: bool, **options) -> None:
    """Train CRL offline on a dataset and evaluate with OGBench's protocol (5 tasks).

    The quick start trains on the shipped sample for a small default budget (%(sample)s SGD steps
    at batch 1024: a few minutes on a quiet 2-core CPU); measured success by preset and depth is
    in docs/benchmarks.md (untrained actor: 0%%):

        crlkit offline --dataset pointmaze-medium-navigate-sample

    OGBench's datasets (here: antmaze-large -> antmaze-large-navigate-v0) train for OGBench's
    1M steps unless --steps says otherwise; --dataset also takes an .npz path or minari:<id>.
    --preset ogbench is OGBench's CRL agent exactly; the default, paper, is that agent with the
    paper's residual towers at --depth (docs/offline.md).
    """
    import jax

    from crlkit.train.offline import run

    dist = usage_errors(lambda: build_config(DistributedConfig, options))
    usage_errors(lambda: join_run(dist))  # multi-host: before any device is touched
    cfg = usage_errors(lambda: build_config(OfflineConfig, options))
    base = preset_learner(cfg.preset)
    lcfg = usage_errors(lambda: build_config(LearnerConfig, options, base))
    summary = training(lambda: run(
        cfg, lcfg, resume=resume, start_over=start_over, progress=not quiet,
        echo=echo_for(quiet),
    ))  # fmt: skip
    if jax.process_index() != 0:  # a multi-host run's other processes: process 0 reports
        return
    tasks = " ".join(f"{summary[f'eval/task{k}_success']:.2f}" for k in names.task_ids(summary))
    where = f"tasks {tasks}" if tasks else "fresh goals"
    result = f"success {summary[names.SUCCESS]:.3f} ({where})" if names.SUCCESS in summary else (
        "no evaluation")  # fmt: skip
    click.echo(f"{result} after {summary['sgd_steps']:,} SGD steps "
               f"({summary['sgd_steps_per_s']:.1f}/s); run dir {summary['run_dir']}")  # fmt: skip
    if video:
        write_run_media(summary["run_dir"], echo_for(quiet))


offline.help = offline.help.replace("%(sample)s", f"{SAMPLE_STEPS:,}").replace("%%", "%")
