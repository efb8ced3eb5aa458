"""`crlkit online`: train CRL online in vectorized envs (the paper's regime)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from crlkit.config import DEPTH_OPTION, LearnerConfig, click_options, from_dict, to_dict
from crlkit.train.online import OnlineConfig

PRESET_CHOICES = ("auto", "quickstart", "paper")


@click.command("online")
@click.option(
    "--preset",
    type=click.Choice(PRESET_CHOICES),
    default="auto",
    show_default=True,
    help="Defaults the flags start from. quickstart: pointmaze-arena, 307,200 env steps, "
    "32 envs, width 64, depth 4 (learns in a few CPU minutes); paper: the paper's settings "
    "(512 envs, unroll 62, batch 512, 800 updates per step, 100M steps). auto: quickstart "
    "when --env is not given, else paper.",
)
@click_options(OnlineConfig)
@click_options(LearnerConfig)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Run directory (default: runs/<env>-d<depth>-<time>); must not exist yet.",
)
@click.option(
    "--resume",
    "resume_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Continue the run in this directory from its newest checkpoint (flags given must "
    "match its config.json, except --steps and the eval/log/checkpoint settings).",
)
@click.option("--tensorboard", is_flag=True, help="Also log to <run dir>/tensorboard.")
@click.option("--wandb", "wandb", is_flag=True, help="Also log to Weights & Biases.")
@click.option(
    "--wandb-project", default="crlkit", show_default=True, help="W&B project for --wandb."
)
@click.option("--quiet", is_flag=True, help="No progress bar and no status lines.")
def online(
    preset: str,
    out: Path | None,
    resume_dir: Path | None,
    tensorboard: bool,
    wandb: bool,
    wandb_project: str,
    quiet: bool,
    **options: Any,
) -> None:
    """Train CRL online: explore from scratch, learn to reach commanded goals, no rewards.

    A bare `crlkit online` runs the quickstart preset: the point mass in the open
    pointmaze-arena for 307,200 env steps, which reaches >= 0.9 success on fresh goals in a few
    minutes on a laptop CPU. With --env the defaults are the paper's, e.g.

        crlkit online --env humanoid --depth 64

    Any flag overrides its preset value. Writes config.json, metrics.jsonl/csv, summary.json and
    checkpoints/ to the run directory (see docs/online.md).
    """
    from crlkit.train import online as online_lib

    given = {k: v for k, v in options.items() if v is not None}
    if resume_dir is not None and out is not None and Path(out) != Path(resume_dir):
        raise click.UsageError("--resume DIR continues DIR; drop --out or make it the same")
    base, preset_name = _base_configs(preset, given, resume_dir)
    online_cfg, learner_cfg = _apply_flags(base, given)
    echo = (lambda msg: None) if quiet else (lambda msg: click.echo(msg, err=True))
    if preset_name:
        echo(
            f"preset {preset_name}: {online_cfg.env}, {online_cfg.steps:,} env steps, "
            f"{online_cfg.num_envs} envs, depth {learner_cfg.network.critic_depth} "
            f"(crlkit online --help for the flags)"
        )
    try:
        summary = online_lib.train(
            online_cfg,
            learner_cfg,
            resume_dir if resume_dir is not None else out,
            resume=resume_dir is not None,
            progress=False if quiet else None,
            tensorboard=tensorboard,
            wandb_project=wandb_project if wandb else None,
            echo=echo,
        )
    except online_lib.NonFiniteLoss as err:
        raise click.ClickException(str(err)) from None
    except ValueError as err:  # bad env, run dir or config: one line, exit code 2
        raise click.UsageError(str(err)) from None
    click.echo(_summary_line(summary))


def _base_configs(
    preset: str, given: dict[str, Any], resume_dir: Path | None
) -> tuple[tuple[OnlineConfig, LearnerConfig], str | None]:
    """(online, learner) the flags apply to: the resumed run's config or a preset; + its name."""
    from crlkit.train import online as online_lib

    if resume_dir is not None:
        config_file = Path(resume_dir) / "config.json"
        if not config_file.is_file():
            raise click.UsageError(f"cannot resume {resume_dir}: no config.json there")
        try:
            return online_lib.configs_from_dict(json.loads(config_file.read_text())), None
        except (KeyError, ValueError) as err:
            raise click.UsageError(f"cannot resume {resume_dir}: bad config.json ({err})") from None
    if preset == "auto":
        preset = "paper" if "env" in given else "quickstart"
    return online_lib.PRESETS[preset], preset


def _apply_flags(
    base: tuple[OnlineConfig, LearnerConfig], given: dict[str, Any]
) -> tuple[OnlineConfig, LearnerConfig]:
    """The base configs with every flag the user gave replacing its field (validated)."""
    given = dict(given)
    depth = given.pop(DEPTH_OPTION, None)
    if depth is not None:
        given.setdefault("actor_depth", depth)
        given.setdefault("critic_depth", depth)
    online_cfg, learner_cfg = base
    try:
        online_cfg = from_dict(OnlineConfig, _override(to_dict(online_cfg), given))
        learner_cfg = from_dict(LearnerConfig, _override(to_dict(learner_cfg), given))
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    return online_cfg, learner_cfg


def _override(tree: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """Copy of a config dict with leaves named in `given` replaced (nested dicts included)."""
    out = {}
    for name, value in tree.items():
        if isinstance(value, dict):
            out[name] = _override(value, given)
        else:
            out[name] = given.get(name, value)
    return out


def _summary_line(summary: dict[str, Any]) -> str:
    evals = ", ".join(
        f"{name.removeprefix('eval/')} {summary[name]:.3g}"
        for name in ("eval/success", "eval/time_at_goal", "eval_tasks/success")
        if name in summary
    )
    return (
        f"{summary['env_steps']:,} env steps in {summary['wall_seconds']:.0f} s "
        f"({summary['env_steps_per_s']:,.0f} env steps/s, {summary['sgd_steps_per_s']:,.1f} "
        f"SGD steps/s); final eval: {evals}; run dir {summary['run_dir']}"
    )
