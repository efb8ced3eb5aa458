"""`crlkit offline`: train CRL on a fixed OGBench/Minari dataset, evaluated as OGBench does."""

from __future__ import annotations

import click
from crlkit.cli.helpers import echo_for, usage_errors
from crlkit.cli.options import build_config, config_options

from crlkit import metric_names as names
from crlkit.config import LearnerConfig
from crlkit.train.offline.config import SAMPLE_STEPS, OfflineConfig

# The learner's defaults that differ offline: the actor loss, and --alpha (an OfflineConfig field,
# resolved per dataset family) replaces the learner's --bc-alpha.
OFFLINE_ACTOR_LOSS = "ddpg_bc"


def _offline_learner_options(command: click.Command) -> click.Command:
    """Drop --bc-alpha (use --alpha) and show ddpg_bc as the actor loss default."""
    command.params = [p for p in command.params if p.name != "bc_alpha"]
    for param in command.params:
        if param.name == "actor_loss":
            param.show_default = OFFLINE_ACTOR_LOSS
    return command


@_offline_learner_options
@click.command("offline")
@config_options(OfflineConfig)
@config_options(LearnerConfig)
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
    from crlkit.train.hostloop import NonFiniteLoss
    from crlkit.train.offline import run

    options["actor_loss"] = options.get("actor_loss") or OFFLINE_ACTOR_LOSS
    cfg = usage_errors(lambda: build_config(OfflineConfig, options))
    lcfg = usage_errors(lambda: build_config(LearnerConfig, options))
    try:
        summary = usage_errors(
            lambda: run(cfg, lcfg, resume=resume, progress=not quiet, echo=echo_for(quiet))
        )
    except NonFiniteLoss as err:  # diverged: exit code 1, state kept
        raise click.ClickException(str(err)) from None
    tasks = " ".join(f"{summary[f'eval/task{k}_success']:.2f}" for k in names.task_ids(summary))
    click.echo(
        f"success {summary[names.SUCCESS]:.3f} (tasks {tasks}) after {summary['sgd_steps']:,} "
        f"SGD steps ({summary['sgd_steps_per_s']:.1f}/s); run dir {summary['run_dir']}"
    )


offline.help = offline.help.replace("%(sample)s", f"{SAMPLE_STEPS:,}").replace("%%", "%")
