"""`crlkit offline`: train CRL on a fixed OGBench/Minari dataset, evaluated as OGBench does."""

from __future__ import annotations

import click

from crlkit.config import LearnerConfig, click_options, config_from_options
from crlkit.train.offline import SAMPLE_STEPS, OfflineConfig

# The learner's defaults that differ offline: the actor loss, and --alpha (an OfflineConfig field,
# resolved per dataset family) replaces the learner's --bc-alpha.
OFFLINE_ACTOR_LOSS = "ddpg_bc"


class InputError(click.ClickException):
    """Bad user input found after parsing (a dataset, env or run dir): one line, exit code 2."""

    exit_code = 2


def _offline_learner_options(command: click.Command) -> click.Command:
    """Drop --bc-alpha (use --alpha) and show ddpg_bc as the actor loss default."""
    command.params = [p for p in command.params if p.name != "bc_alpha"]
    for param in command.params:
        if param.name == "actor_loss":
            param.show_default = OFFLINE_ACTOR_LOSS
    return command


@_offline_learner_options
@click.command("offline")
@click_options(OfflineConfig)
@click_options(LearnerConfig)
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--quiet", is_flag=True, help="No progress bar or notes (errors still print).")
def offline(resume: bool, quiet: bool, **options) -> None:
    """Train CRL offline on a dataset and evaluate with OGBench's protocol (5 tasks).

    The quick start trains on the shipped sample for a small default budget (%(sample)s SGD steps
    at batch 1024: a few minutes on a quiet 2-core CPU) and reached 27%% success on OGBench's 5
    tasks (seed 0; untrained actor: 0%%; docs/offline.md):

        crlkit offline --dataset pointmaze-medium-navigate-sample

    OGBench's datasets (here: antmaze-large -> antmaze-large-navigate-v0) train for OGBench's
    1M steps unless --steps says otherwise; --dataset also takes an .npz path or minari:<id>.
    """
    from crlkit.train import offline as offline_lib
    from crlkit.train.rundir import NonFiniteLoss

    options.setdefault("actor_loss", None)
    options["actor_loss"] = options["actor_loss"] or OFFLINE_ACTOR_LOSS
    echo = (lambda _: None) if quiet else (lambda line: click.echo(line, err=True))
    try:
        cfg = config_from_options(OfflineConfig, options)
        lcfg = config_from_options(LearnerConfig, options)
        summary = offline_lib.run(cfg, lcfg, resume=resume, progress=not quiet, echo=echo)
    except ValueError as err:  # DatasetError, RunDirError and bad settings are ValueErrors
        raise InputError(str(err)) from None
    except NonFiniteLoss as err:  # diverged: exit code 1, state kept
        raise click.ClickException(str(err)) from None
    tasks = " ".join(f"{summary[f'eval/task{k}_success']:.2f}" for k in _task_ids(summary))
    click.echo(
        f"success {summary['eval/success']:.3f} (tasks {tasks}) after {summary['sgd_steps']:,} "
        f"SGD steps ({summary['sgd_steps_per_s']:.1f}/s); run dir {summary['run_dir']}"
    )


def _task_ids(summary: dict) -> list[int]:
    names = (k.removeprefix("eval/task").removesuffix("_success") for k in summary)
    return sorted(int(n) for n in names if n.isdigit())


offline.help = offline.help.replace("%(sample)s", f"{SAMPLE_STEPS:,}").replace("%%", "%")
