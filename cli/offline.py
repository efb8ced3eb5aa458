"""`crlkit offline`: train CRL on a fixed OGBench/Minari dataset, evaluated as OGBench does."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click
from crlkit.cli.config_file import CONFIG_HELP, read_config_file
from crlkit.cli.helpers import (
    QUIET_HELP,
    START_OVER_HELP,
    VIDEO_HELP,
    InputError,
    echo_for,
    training,
    usage_errors,
    write_run_media,
)
from crlkit.cli.options import NonEmptyPath, build_config, config_options

from crlkit import metric_names as names
from crlkit.config import LearnerConfig
from crlkit.runs.sinks import TrackingConfig
from crlkit.train.offline.config import (
    PRESETS,
    QUICKSTART_STEPS,
    OfflineConfig,
    choose_preset,
    preset_learner,
)
from crlkit.train.parallel import DistributedConfig
from crlkit.train.parallel import initialize as join_run

DIR = NonEmptyPath(file_okay=False, path_type=Path)

# --alpha (an OfflineConfig field, resolved per dataset family) replaces the learner's --bc-alpha.
PRESET_LEARNERS = {name: preset_learner(name) for name in PRESETS}


@click.command("offline")
@config_options(OfflineConfig)
@config_options(LearnerConfig, skip=("bc_alpha",), presets=PRESET_LEARNERS)
@config_options(DistributedConfig)
@config_options(TrackingConfig)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=CONFIG_HELP + " Replaces --preset's learner settings.",
)
@click.option(
    "--resume",
    "resume_dir",
    type=DIR,
    default=None,
    help="Continue the run in this directory from its newest checkpoint, with the "
    "dataset and settings of its config.json (flags given must match it, except "
    "--steps).",
)
@click.option("--start-over", is_flag=True, help=START_OVER_HELP)
@click.option("--video", is_flag=True, help=VIDEO_HELP)
@click.option("--quiet", is_flag=True, help=QUIET_HELP)
def offline(
    config_file: Path | None,
    resume_dir: Path | None,
    start_over: bool,
    video: bool,
    quiet: bool,
    **options: Any,
) -> None:
    """Train CRL offline on a dataset and evaluate with OGBench's protocol (5 tasks).

    The quick start, bare `crlkit offline`, trains the quickstart preset on the shipped sample
    (pointmaze-medium-navigate-sample): %(quick)s SGD steps at batch 1024, width 128. Measured on
    a quiet 2-core CPU: 3 min 34 s, success 0.43 on OGBench's 5 tasks (mean of 3 seeds; untrained
    actor: 0%%):

        crlkit offline

    OGBench's datasets (here: antmaze-large -> antmaze-large-navigate-v0) train the paper preset
    for OGBench's 1M steps unless --steps says otherwise (GPU-scale; OGBench reports CRL at 29%%
    on pointmaze-medium-navigate after 1M steps); --dataset also takes an .npz path or
    minari:<id>. --preset ogbench is OGBench's CRL agent exactly; paper is that agent with the
    paper's residual towers at --depth (docs/offline.md).
    """
    import jax

    from crlkit.train.offline import run

    dist = usage_errors(lambda: build_config(DistributedConfig, options))
    usage_errors(lambda: join_run(dist))  # multi-host: before any device is touched
    if resume_dir is not None:
        out = options.get("out")
        if out is not None and Path(out) != Path(resume_dir):
            raise click.UsageError("--resume DIR continues DIR; drop --out or make it the same")
        if config_file is not None:
            raise click.UsageError("--resume DIR reads DIR/config.json; drop --config")
        options["out"] = str(resume_dir)
    tracking = usage_errors(lambda: build_config(TrackingConfig, options))
    cfg_base, lcfg_base = base_configs(resume_dir, config_file)
    cfg = usage_errors(lambda: choose_preset(build_config(OfflineConfig, options, cfg_base)))
    base = lcfg_base if lcfg_base is not None else preset_learner(cfg.preset)
    lcfg = usage_errors(lambda: build_config(LearnerConfig, options, base))
    resume = resume_dir is not None
    summary = training(
        lambda: run(
            cfg,
            lcfg,
            resume=resume,
            start_over=start_over,
            progress=not quiet,
            tracking=tracking,
            echo=echo_for(quiet),
        )
    )
    if jax.process_index() != 0:  # a multi-host run's other processes: process 0 reports
        return
    tasks = " ".join(f"{summary[f'eval/task{k}_success']:.2f}" for k in names.task_ids(summary))
    where = f"tasks {tasks}" if tasks else "fresh goals"
    result = (
        f"success {summary[names.SUCCESS]:.3f} ({where})"
        if names.SUCCESS in summary
        else ("no evaluation")
    )
    click.echo(
        f"{result} after {summary['sgd_steps']:,} SGD steps "
        f"({summary['sgd_steps_per_s']:.1f}/s); run dir {summary['run_dir']}"
    )
    if video:
        write_run_media(summary["run_dir"], echo_for(quiet))


offline.help = offline.help.replace("%(quick)s", f"{QUICKSTART_STEPS:,}").replace("%%", "%")


def base_configs(
    resume_dir: Path | None, config_file: Path | None
) -> tuple[OfflineConfig | None, LearnerConfig | None]:
    """(offline, learner) the flags apply to: a resumed run's or a --config file's (its `out`
    dropped unless resuming), else (None, None): the defaults and --preset's learner."""
    if resume_dir is None and config_file is None:
        return None, None
    path = config_file if config_file is not None else Path(resume_dir) / "config.json"
    if resume_dir is not None and not path.is_file():
        raise InputError(f"cannot resume {resume_dir}: not a crlkit run directory (no config.json)")
    sections = {"offline": OfflineConfig, "learner": LearnerConfig}
    label = f"--config {path}" if resume_dir is None else f"cannot resume {resume_dir}: {path}"
    found = usage_errors(lambda: read_config_file(path, sections, label))
    if "offline" not in found:
        raise InputError(f"{label}: has no 'offline' section (not an offline run's config)")
    cfg = found["offline"]
    if resume_dir is None:  # a new run: its own --out or a fresh default directory
        cfg = dataclasses.replace(cfg, out=None)
    return cfg, found.get("learner")
