"""`crlkit eval` (a saved run's checkpoint evaluated as the run's own loop evaluates it) and the
other ways back into a saved run: `--config FILE` replays and `crlkit offline --resume DIR`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import TINY_ONLINE_FLAGS
from crlkit.cli.main import cli

from crlkit.data import ogbench_io
from crlkit.data.dataset import from_raw

# As tests/test_online.py's and test_offline.py's tiny runs (online 8 wide, not 16: test_online
# counts its compilations, which a same-shaped run here would serve from JAX's cache).
TINY = [*TINY_ONLINE_FLAGS, "--width", "8", "--quiet"]  # width 8: its own compile
TINY_FLAGS = ["--width", "16", "--depth", "8", "--repr-dim", "8", "--batch-size", "16"]


def toy_dataset(env: str, obs_dim: int, action_dim: int, lengths=(30, 40, 50)):
    """Random-action episodes whose observations start with (episode id, step)."""
    n = sum(lengths)
    obs = np.zeros((n, obs_dim), np.float32)
    obs[:, 0] = np.repeat(np.arange(len(lengths)), lengths)
    obs[:, 1] = np.concatenate([np.arange(k) for k in lengths])
    final = np.zeros(n, bool)
    final[np.cumsum(lengths) - 1] = True
    actions = np.random.default_rng(0).uniform(-0.9, 0.9, (n, action_dim)).astype(np.float32)
    meta = {"name": "toy-navigate", "env": env}
    return from_raw(obs, actions, final, goal_indices=(0, 1), source="toy", metadata=meta)


def _evals(metrics: dict) -> dict:
    """Everything an evaluation measures (eval/seconds is wall time)."""
    kept = {k: v for k, v in metrics.items() if k.startswith(("eval/", "eval_tasks/"))}
    kept.pop("eval/seconds", None)
    return kept


def _eval(*args):
    return CliRunner().invoke(cli, ["eval", *args, "--quiet"], catch_exceptions=False)


@pytest.fixture(scope="module")
def online_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("online") / "run"
    args = ["online", *TINY, "--steps", "64", "--checkpoint-every", "32", "--out", str(out)]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


def test_eval_repeats_the_online_runs_final_evaluation(online_run, tmp_path):
    summary = json.loads((online_run / "summary.json").read_text())
    metrics_file = tmp_path / "eval.json"
    result = _eval(str(online_run), "--json", str(metrics_file))
    assert result.exit_code == 0, result.output
    metrics = json.loads(metrics_file.read_text())
    assert metrics["step"] == 64 and metrics["regime"] == "online"
    assert _evals(metrics) == _evals(summary)  # the same episodes, to the last distance
    assert "eval/final_distance" in metrics and "eval_tasks/task5_success" in metrics
    line = result.output.strip()
    assert f"success {summary['eval/success']:.3f}" in line
    assert f"steps_at_goal {summary['eval/steps_at_goal']:.0f}/1000" in line
    # Another seed: other goals, other distances; fewer episodes, --fresh-goals only.
    other = tmp_path / "other.json"
    flags = ["--seed", "7", "--fresh-goals", "--episodes", "1", "--json", str(other)]
    result = _eval(str(online_run), *flags)
    assert result.exit_code == 0, result.output
    other = json.loads(other.read_text())
    assert other["seed"] == 7 and not any(k.startswith("eval_tasks/") for k in other)
    assert other["eval/final_distance"] != metrics["eval/final_distance"]
    tasks = tmp_path / "tasks.json"
    assert _eval(str(online_run), "--tasks", "--json", str(tasks)).exit_code == 0
    tasks = json.loads(tasks.read_text())
    assert "eval/success" not in tasks
    assert tasks["eval_tasks/success"] == summary["eval_tasks/success"]


def test_eval_bad_input_is_one_line(online_run, tmp_path):
    result = _eval(str(online_run), "--step", "50")
    assert result.exit_code == 2
    assert "no checkpoint at step 50; saved steps: 32, 64" in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = _eval(str(tmp_path))
    assert result.exit_code == 2 and "not a crlkit run directory" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text((online_run / "config.json").read_text())
    result = _eval(str(empty))
    assert result.exit_code == 2 and "no checkpoint" in result.output
    result = _eval(str(online_run), "--episodes", "0")
    assert result.exit_code == 2 and "--episodes must be >= 1" in result.output


def test_eval_repeats_the_offline_runs_final_evaluation(tmp_path):
    # The ant's open floor: no fixed tasks, so the offline evaluation is on fresh goals, with
    # distances to compare (the point envs all have tasks: successes only, zeros this early).
    ds = toy_dataset("ant", obs_dim=29, action_dim=8)
    data = tmp_path / "toy-navigate.npz"
    ogbench_io.write_npz(ds, ds, data)
    out = tmp_path / "run"
    flags = ["--dataset", str(data), "--env", "ant", "--steps", "6"]
    args = ["offline", *TINY_FLAGS, *flags, "--eval-episodes", "1", "--out", str(out), "--quiet"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    metrics_file = tmp_path / "eval.json"
    result = _eval(str(out), "--json", str(metrics_file))
    assert result.exit_code == 0, result.output
    metrics = json.loads(metrics_file.read_text())
    assert metrics["regime"] == "offline" and metrics["step"] == 6
    assert "eval/final_distance" in metrics
    assert _evals(metrics) == _evals(summary)
    assert f"success {summary['eval/success']:.3f}" in result.output
    result = _eval(str(out), "--tasks")
    assert result.exit_code == 2 and "no fixed evaluation tasks" in result.output

    # --config replays the run's setup into a new dir: the same config.json apart from `out`.
    replay = tmp_path / "replay"
    args = ["offline", "--config", str(out / "config.json"), "--out", str(replay), "--quiet"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    first, again = (json.loads((d / "config.json").read_text()) for d in (out, replay))
    assert again["offline"].pop("out") == str(replay) and first["offline"].pop("out") == str(out)
    assert again == first
    # --resume DIR alone: dataset and settings from DIR/config.json; only --steps may change.
    args = ["offline", "--resume", str(out), "--steps", "8", "--quiet"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "summary.json").read_text())["sgd_steps"] == 8


def test_config_replays_an_online_run_and_flags_override_it(online_run, tmp_path):
    replay = tmp_path / "replay"
    args = [
        "online",
        "--config",
        str(online_run / "config.json"),
        "--steps",
        "64",
        "--seed",
        "3",
        "--out",
        str(replay),
        "--quiet",
    ]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    first, again = (json.loads((d / "config.json").read_text()) for d in (online_run, replay))
    assert again["online"].pop("seed") == 3 and first["online"].pop("seed") == 0
    assert again == first  # everything else from the file, not from a preset


@pytest.mark.parametrize(
    "content, message",
    [
        ({"online": {"num_envz": 4}}, "unknown key 'online.num_envz', not a crlkit setting"),
        ({"learner": {"network": {"widht": 8}}, "online": {}}, "'learner.network.widht'"),
        ({"runs": 3}, "unknown key 'runs' (a crlkit config has online, learner)"),
        ([1, 2], "not a crlkit config"),
        ({"learner": {}}, "has no 'online' section"),
    ],
)
def test_config_file_that_is_not_a_crlkit_config_is_one_line(tmp_path, content, message):
    path = tmp_path / "x.json"
    path.write_text(json.dumps(content))
    result = CliRunner().invoke(cli, ["online", "--config", str(path), "--quiet"])
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1
