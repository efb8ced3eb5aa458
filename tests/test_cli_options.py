"""The one dataclass-to-click generator (cli/options.py): flags from fields, presets, prefixes."""

import dataclasses

import click
from click.testing import CliRunner
from crlkit.cli.helpers import usage_errors
from crlkit.cli.options import build_config, config_options

from crlkit.config import LearnerConfig, NetworkConfig


@click.command()
@config_options(LearnerConfig)
def _learner_command(**options):
    click.echo(repr(usage_errors(lambda: build_config(LearnerConfig, options))))


def test_click_options_build_the_config_from_flags():
    runner = CliRunner()
    out = runner.invoke(
        _learner_command, ["--depth", "8", "--critic-depth", "12", "--energy", "dot"]
    )
    assert out.exit_code == 0, out.output
    cfg = eval(out.output, {"LearnerConfig": LearnerConfig, "NetworkConfig": NetworkConfig})
    assert (cfg.network.actor_depth, cfg.network.critic_depth, cfg.energy) == (8, 12, "dot")
    assert cfg.network.width == 256 and cfg.contrastive_loss == "fwd_infonce"

    out = runner.invoke(_learner_command, ["--no-layer-norm", "--actor-lr", "1e-3"])
    cfg = eval(out.output, {"LearnerConfig": LearnerConfig, "NetworkConfig": NetworkConfig})
    assert cfg.network.layer_norm is False and cfg.actor_lr == 1e-3

    help_text = runner.invoke(_learner_command, ["--help"]).output
    assert "--contrastive-loss" in help_text and "--remat [auto|on|off]" in help_text

    for bad in (["--depth", "6"], ["--energy", "l3"], ["--width", "0"]):
        out = runner.invoke(_learner_command, bad)
        assert out.exit_code == 2, (bad, out.output)


def test_depth_option_reaches_the_learner_whatever_the_build_order():
    from crlkit.train.offline import OfflineConfig

    options = {"depth": 8, "steps": 10, "width": 64}
    offline_cfg = build_config(OfflineConfig, options)  # has no depth fields: leaves it
    cfg = build_config(LearnerConfig, options)
    assert offline_cfg.steps == 10
    assert (cfg.network.actor_depth, cfg.network.critic_depth, cfg.network.width) == (8, 8, 64)
    assert options == {}  # every key consumed by the config it belongs to


def test_prefixed_options_and_presets_build_from_a_base():
    from crlkit.train.online import PRESETS, OnlineConfig

    @click.command()
    @config_options(OnlineConfig, "online", ("env",), {n: c[0] for n, c in PRESETS.items()})
    def command(**options):
        base = dataclasses.replace(PRESETS["quickstart"][0], env="pointmaze-medium")
        click.echo(repr(build_config(OnlineConfig, options, base, prefix="online").num_envs))

    runner = CliRunner()
    assert runner.invoke(command, []).output.strip() == "32"  # the base's value
    assert runner.invoke(command, ["--online-num-envs", "8"]).output.strip() == "8"
    help_text = " ".join(runner.invoke(command, ["--help"]).output.split())
    assert "--online-num-envs" in help_text and "512 (paper), 32 (quickstart)" in help_text
    assert "--online-env" not in help_text


def test_repeated_flags_collect_one_item_per_use_and_the_real_commands_refuse_a_comma():
    from crlkit.cli.main import cli

    from crlkit.runs.sinks import TrackingConfig

    @click.command()
    @config_options(TrackingConfig)
    def command(**options):
        click.echo(repr(usage_errors(lambda: build_config(TrackingConfig, options))))

    runner = CliRunner()
    out = runner.invoke(command, ["--tags", "baseline", "--tags", "deep net", "--group", "g"])
    assert out.exit_code == 0, out.output
    assert "tags=('baseline', 'deep net')" in out.output and "group='g'" in out.output
    out = runner.invoke(command, [])
    assert "tags=()" in out.output and "name=None" in out.output and "wandb=False" in out.output
    for name in ("online", "offline", "sweep"):
        out = runner.invoke(cli, [name, "--tags", "a,b"])
        assert out.exit_code == 2, (name, out.output)
        assert out.output.strip().splitlines()[-1] == (
            "Error: --tags 'a,b': a tag cannot contain ','; give --tags once per tag "
            "(--tags a --tags b)"
        ), (name, out.output)
