"""One config mechanism: field metadata declares choices, ranges, finiteness and "auto" (None);
every config class validates them generically, and every command's --help shows real defaults."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
from click.testing import CliRunner
from crlkit.cli.main import cli
from crlkit.cli.options import build_config, config_options, leaf_fields

from crlkit.checks import INT32_MAX, field_types
from crlkit.collect.config import CollectConfig
from crlkit.config import LearnerConfig, NetworkConfig
from crlkit.runs.sinks import TrackingConfig
from crlkit.train.offline.config import OfflineConfig
from crlkit.train.online.config import OnlineConfig
from crlkit.train.parallel import DistributedConfig

SAMPLE = "pointmaze-medium-navigate-sample"
COMMANDS = [
    ["online"],
    ["offline"],
    ["collect"],
    ["datasets"],
    ["envs"],
    ["bench", "learner"],
    ["bench", "env"],
    ["bench", "plan"],
    ["sweep"],
    ["report"],
    ["render"],
    ["eval"],
]
# The smallest valid instance of each config class (its required fields filled).
CONFIGS = {
    OnlineConfig: {},
    OfflineConfig: {},
    LearnerConfig: {},
    NetworkConfig: {},
    CollectConfig: {"env": "pointmaze-medium", "out": "x.npz"},
    DistributedConfig: {},
    TrackingConfig: {},
}


def _one_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_shows_real_defaults_never_parentheses(command):
    result = CliRunner().invoke(cli, [*command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "()" not in result.output and "[default: (" not in result.output


def test_offline_help_shows_values_and_what_auto_means():
    text = CliRunner().invoke(cli, ["offline", "--help"], terminal_width=400).output
    assert "[default: 1024]" in text
    assert "--steps INTEGER|auto" in text
    assert "[default: auto: 8,000 with the quickstart preset; else 1,000,000 (OGBench's" in text
    assert "--goal-space [auto|observation|slice]" in text


@pytest.mark.parametrize("cls", list(CONFIGS), ids=lambda c: c.__name__)
def test_every_float_field_refuses_nan_and_inf(cls):
    floats = [f.name for f in dataclasses.fields(cls) if field_types(cls)[f.name][0] is float]
    assert floats or cls in (NetworkConfig, DistributedConfig, TrackingConfig)  # none to check
    for name in floats:
        says = f"--{name.replace('_', '-')} must be a finite number"
        for bad in (math.nan, math.inf, -math.inf):
            with pytest.raises(ValueError, match=says) as err:
                cls(**{**CONFIGS[cls], name: bad})
            assert "\n" not in str(err.value)


@pytest.mark.parametrize("cls", list(CONFIGS), ids=lambda c: c.__name__)
def test_every_choice_field_is_checked_from_its_metadata(cls):
    chosen = [f for f in dataclasses.fields(cls) if f.metadata.get("choices")]
    for f in chosen:
        with pytest.raises(ValueError, match=f"unknown {f.name} 'bogus'; valid: ") as err:
            cls(**{**CONFIGS[cls], f.name: "bogus"})
        assert ", ".join(f.metadata["choices"]) in str(err.value)


@pytest.mark.parametrize("cls", list(CONFIGS), ids=lambda c: c.__name__)
def test_only_fields_that_default_to_none_accept_none_and_text_is_never_empty(cls):
    for f in dataclasses.fields(cls):
        if f.default is None or f.name in CONFIGS[cls]:
            continue
        with pytest.raises(ValueError, match=f"--{f.name.replace('_', '-')} "):
            cls(**{**CONFIGS[cls], f.name: None})
        if field_types(cls)[f.name][0] is str:
            with pytest.raises(ValueError, match="must not be empty"):
                cls(**{**CONFIGS[cls], f.name: ""})


def test_integer_budgets_are_bounded_by_the_int32_step_counters():
    assert OfflineConfig(steps=INT32_MAX).steps == INT32_MAX
    with pytest.raises(ValueError, match="SGD steps are counted in int32"):
        OfflineConfig(steps=INT32_MAX + 1)
    # Online: training steps x updates per step is the learner's SGD step count.
    cfg = OnlineConfig(num_envs=1, unroll_length=1, updates_per_step=1, steps=INT32_MAX)
    assert cfg.train_steps == INT32_MAX
    with pytest.raises(ValueError, match="at most 85,212,133,376 env steps") as err:
        OnlineConfig(steps=10**23)  # the paper's 800 updates per 512 x 62 env steps
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="datasets index rows in int32"):
        CollectConfig(**CONFIGS[CollectConfig], steps=2**31)


@pytest.mark.parametrize(
    "args, says",
    [
        (["offline", "--dataset", SAMPLE, "--steps", str(10**23)], "--steps must be >= 1 and <="),
        (["offline", "--dataset", SAMPLE, "--steps", "1e23"], "'1e23' is not a valid integer"),
        (["offline", "--dataset", SAMPLE, "--alpha", "nan"], "--alpha must be a finite number"),
        (["offline", "--dataset", SAMPLE, "--out", ""], "--out must not be empty"),
        (["online", "--critic-lr", "inf"], "--critic-lr must be a finite number, got inf"),
        (["online", "--target-entropy-scale", "nan"], "--target-entropy-scale must be a finite"),
        (["online", "--steps", str(10**23)], "SGD updates, more than 2,147,483,647"),
        (["online", "--out", ""], "must not be empty"),
        (["online", "--resume", ""], "must not be empty"),
        (["online", "--seed", str(2**32)], "--seed must be >= 0 and <= 4,294,967,295"),
        (["online", "--gamma", "1"], "--gamma must lie strictly between 0.0 and 1.0, got 1.0"),
        (["collect", "--env", "pointmaze-medium", "--out", ""], "--out must not be empty"),
        (
            ["collect", "--env", "pointmaze-medium", "--out", "x.npz", "--noise", "inf"],
            "--noise must be a finite number",
        ),
        (["offline", "--dataset", SAMPLE, "--discount", "auto-ish"], "'auto-ish' is not a valid"),
    ],
)
def test_bad_values_are_one_line_errors(args, says, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert says in _one_line(CliRunner().invoke(cli, args))
    assert list(tmp_path.iterdir()) == []


def test_auto_on_the_command_line_sets_none_over_a_preset():
    import click

    base = dataclasses.replace(OfflineConfig(), steps=7, alpha=0.5, out="somewhere")

    @click.command()
    @config_options(OfflineConfig)
    def command(**options):
        cfg = build_config(OfflineConfig, options, base)
        click.echo(json.dumps([cfg.steps, cfg.alpha, cfg.out, cfg.goal_space]))

    runner = CliRunner()
    out = runner.invoke(command, ["--steps", "auto", "--alpha", "AUTO", "--goal-space", "auto"])
    assert json.loads(out.output) == [None, None, "somewhere", None]
    out = runner.invoke(command, ["--steps", "12", "--goal-space", "slice"])
    assert json.loads(out.output) == [12, 0.5, "somewhere", "slice"]


def test_tuple_fields_take_comma_separated_values():
    import click

    @dataclasses.dataclass(frozen=True)
    class Grid:
        depths: tuple[int, ...] = dataclasses.field(
            default=(4, 16), metadata={"help": "Depths.", "minimum": 1}
        )
        names: tuple[str, ...] = dataclasses.field(
            default=(), metadata={"help": "Names.", "choices": ("a", "b")}
        )

    @click.command()
    @config_options(Grid)
    def command(**options):
        click.echo(repr(build_config(Grid, options)))

    runner = CliRunner()
    assert (
        "depths=(8, 64), names=('b', 'a')"
        in runner.invoke(command, ["--depths", "8,64", "--names", "b,a"]).output
    )
    text = runner.invoke(command, ["--help"]).output
    assert "[default: 4,16]" in text and "()" not in text
    assert runner.invoke(command, ["--names", "a,c"]).exit_code == 2


def test_every_leaf_field_has_help_and_a_flag():
    for cls in CONFIGS:
        for f in leaf_fields(cls):
            assert f.metadata.get("help"), (cls.__name__, f.name)


def test_a_dataset_is_planned_once_per_run_and_recorded_verbatim(tmp_path, monkeypatch):
    """A real offline run on the shipped sample: the dataset's meaning (family, goal space,
    evaluation target, BC weight, discount, ...) is decided by one call."""
    from crlkit.data import plan as data_plan
    from crlkit.train.offline import config as offline_config
    from crlkit.train.offline import evaluators, loop

    calls = {"plan": 0, "target": 0, "family": 0}

    def counting(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)

        return wrapper

    plan = counting("plan", data_plan.plan_dataset)
    for module in (data_plan, offline_config, evaluators, loop):
        monkeypatch.setattr(module, "plan_dataset", plan, raising=False)
    monkeypatch.setattr(
        data_plan, "find_eval_target", counting("target", data_plan.find_eval_target)
    )
    monkeypatch.setattr(data_plan, "dataset_family", counting("family", data_plan.dataset_family))
    out = tmp_path / "run"
    result = CliRunner().invoke(
        cli,
        [
            "offline",
            "--dataset",
            SAMPLE,
            "--steps",
            "2",
            "--batch-size",
            "16",
            "--width",
            "16",
            "--eval-episodes",
            "1",
            "--log-every",
            "1",
            "--quiet",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert calls == {"plan": 1, "target": 1, "family": 1}
    config = json.loads((out / "config.json").read_text())
    recorded = config["dataset"]["plan"]
    assert recorded["family"] == "pointmaze" and recorded["data_type"] == "navigate"
    assert recorded["eval_target"] == ["crlkit", "pointmaze-medium"]
    assert recorded["env"] == "pointmaze-medium" and recorded["goal_space"] == "observation"
    assert recorded["bc_alpha"] == config["learner"]["bc_alpha"] == 0.03
    assert recorded["discount"] == config["offline"]["discount"] == 0.99
    assert recorded["goal_indices"] == config["dataset"]["goal_indices"]
