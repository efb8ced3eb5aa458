"""`crlkit online`: train CRL online in vectorized envs (the paper's regime)."""

from __future__ import annotations

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

from crlkit.config import LearnerConfig
from crlkit.runs.sinks import TrackingConfig
from crlkit.train.online.config import PRESETS, OnlineConfig
from crlkit.train.parallel import DistributedConfig
from crlkit.train.parallel import initialize as join_run

PRESET_CHOICES = ("auto", *PRESETS)
DIR = NonEmptyPath(file_okay=False, path_type=Path)


@click.command("online")
@click.option(
    "--preset",
    type=click.Choice(PRESET_CHOICES),
    default="auto",
    show_default=True,
    help="Defaults the flags start from. quickstart: pointmaze-arena, 307,200 env steps, "
    "32 envs, width 64, depth 4 (success 1.0 in 117 s on a quiet 2-core CPU); paper: the "
    "paper's settings (512 envs, unroll 62, batch 512, 800 updates per step, 1000 prefill steps "
    "per env, 100M steps). auto: quickstart when --env is not given, else paper.",
)
@config_options(OnlineConfig, presets={n: c[0] for n, c in PRESETS.items()})
@config_options(LearnerConfig, presets={n: c[1] for n, c in PRESETS.items()})
@config_options(DistributedConfig)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=CONFIG_HELP + " Replaces --preset.",
)
@click.option(
    "--out",
    type=DIR,
    default=None,
    help="Run directory (default: runs/<env>-d<depth>-s<seed>-<time>); must not exist yet.",
)
@click.option(
    "--resume",
    "resume_dir",
    type=DIR,
    default=None,
    help="Continue the run in this directory from its newest checkpoint (flags given "
    "must match its config.json, except --steps and the eval/log/checkpoint settings).",
)
@click.option("--start-over", is_flag=True, help=START_OVER_HELP)
@config_options(TrackingConfig)
@click.option("--video", is_flag=True, help=VIDEO_HELP)
@click.option("--quiet", is_flag=True, help=QUIET_HELP)
def online(
    preset: str,
    config_file: Path | None,
    out: Path | None,
    resume_dir: Path | None,
    start_over: bool,
    video: bool,
    quiet: bool,
    **options: Any,
) -> None:
    """Train CRL online: explore from scratch, learn to reach commanded goals, no rewards.

    A bare `crlkit online` runs the quickstart preset: the point mass in the open
    pointmaze-arena for 307,200 env steps, which reaches >= 0.9 success on fresh goals in about
    two minutes on a 2-core CPU (117 s, quiet). With --env the defaults are the paper's, e.g.

        crlkit online --env humanoid --depth 64

    Any flag overrides its preset value. Writes config.json, metrics.jsonl/csv, summary.json and
    checkpoints/ to the run directory (see docs/online.md).
    """
    from crlkit.train.online import train

    dist = usage_errors(lambda: build_config(DistributedConfig, options))
    usage_errors(lambda: join_run(dist))  # multi-host: before any device is touched
    if resume_dir is not None and out is not None and Path(out) != Path(resume_dir):
        raise click.UsageError("--resume DIR continues DIR; drop --out or make it the same")
    if resume_dir is not None and config_file is not None:
        raise click.UsageError("--resume DIR reads DIR/config.json; drop --config")
    (online_base, learner_base), preset_name = base_configs(
        preset, options, resume_dir, config_file
    )
    tracking = usage_errors(lambda: build_config(TrackingConfig, options))
    online_cfg, learner_cfg = configs_from_flags((online_base, learner_base), options)
    echo = echo_for(quiet)
    if preset_name:
        echo(
            f"preset {preset_name}: {online_cfg.env}, {online_cfg.steps:,} env steps, "
            f"{online_cfg.num_envs} envs, depth {learner_cfg.network.critic_depth} "
            f"(crlkit online --help for the flags)"
        )
    summary = training(
        lambda: train(
            online_cfg,
            learner_cfg,
            resume_dir if resume_dir is not None else out,
            resume=resume_dir is not None,
            start_over=start_over,
            progress=False if quiet else None,
            tracking=tracking,
            echo=echo,
        )
    )
    click.echo(summary_line(summary))
    if video:
        write_run_media(summary["run_dir"], echo)


def base_configs(
    preset: str, options: dict[str, Any], resume_dir: Path | None, config_file: Path | None = None
) -> tuple[tuple[OnlineConfig, LearnerConfig], str | None]:
    """(online, learner) the flags apply to: the resumed run's config, a --config file's or a
    preset; + the preset's name."""
    from crlkit.runs.rundir import read_run_config
    from crlkit.train.online import configs_from_dict

    if resume_dir is not None:
        try:
            return configs_from_dict(read_run_config(resume_dir)), None
        except (KeyError, ValueError) as err:
            raise InputError(f"cannot resume {resume_dir}: {err}") from None
    if config_file is not None:
        sections = {"online": OnlineConfig, "learner": LearnerConfig}
        found = usage_errors(lambda: read_config_file(config_file, sections))
        if "online" not in found:
            raise InputError(f"--config {config_file}: has no 'online' section")
        return (found["online"], found.get("learner", LearnerConfig())), None
    if preset == "auto":
        preset = "paper" if options.get("env") is not None else "quickstart"
    return PRESETS[preset], preset


def configs_from_flags(
    base: tuple[OnlineConfig, LearnerConfig], options: dict[str, Any]
) -> tuple[OnlineConfig, LearnerConfig]:
    """The base configs with every flag the user gave replacing its field (validated)."""
    options = dict(options)
    return usage_errors(
        lambda: (
            build_config(OnlineConfig, options, base[0]),
            build_config(LearnerConfig, options, base[1]),
        )
    )


def summary_line(summary: dict[str, Any]) -> str:
    """The one line printed at the end of a run."""
    shown = ("eval/success", "eval/time_at_goal", "eval_tasks/success")
    parts = [f"{n.removeprefix('eval/')} {summary[n]:.3g}" for n in shown if n in summary]
    if "eval/steps_at_goal" in summary and summary.get("episode_length"):  # the paper's units
        steps = f"steps_at_goal {summary['eval/steps_at_goal']:.0f}/{summary['episode_length']}"
        parts.insert(2 if "eval/time_at_goal" in summary else 1, steps)
    evals = ", ".join(parts)
    evals = evals or "on process 0"  # multi-host: only process 0 evaluates
    return (
        f"{summary['env_steps']:,} env steps in {summary['wall_seconds']:.0f} s "
        f"({summary['env_steps_per_s']:,.0f} env steps/s, {summary['sgd_steps_per_s']:,.1f} "
        f"SGD steps/s); final eval: {evals}; run dir {summary['run_dir']}"
    )
