"""`crlkit online`: evaluation counting, the run dir, presets, bad input, non-finite losses,
kill-and-resume, and (slow) that the quickstart actually learns."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import TINY_ONLINE_FLAGS
from crlkit.cli.main import cli
from crlkit.cli.online import base_configs, configs_from_flags

from crlkit.envs import make
from crlkit.runs import rundir
from crlkit.runs.checkpoint import Checkpoints
from crlkit.train import evaluate, online

# A tiny run: 4 envs x 8 steps = 32 env steps per training step, a 16-wide depth-4 learner.
TINY = [*TINY_ONLINE_FLAGS, "--quiet"]


def _run(args: list[str]):
    return CliRunner().invoke(cli, ["online", *args], catch_exceptions=False)


def _events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _final_checkpoint(run_dir: Path) -> dict[str, np.ndarray]:
    """Every leaf of a run's newest checkpoint by path (replay leaves too, if saved), plus
    "__step__"."""
    ckpts = Checkpoints(run_dir / "checkpoints")
    step = ckpts.steps()[-1]
    replay = ckpts.load_leaves(step, item="replay")
    leaves = {**ckpts.load_leaves(step), **{".replay" + k: v for k, v in replay.items()}}
    ckpts.close()
    return {**leaves, "__step__": np.array(step)}


def _checkpoint_paths(run_dir: Path) -> list[str]:
    """Pytree paths of the leaves in a run's newest checkpoint (the buffer's as .replay...)."""
    ckpts = Checkpoints(run_dir / "checkpoints")
    header = ckpts.header(ckpts.steps()[-1])["leaves"]
    ckpts.close()
    return [leaf["path"] for leaf in header["state"]] + [
        ".replay" + leaf["path"] for leaf in header.get("replay", [])
    ]


_TRACES = [0]  # times the jitted epoch was traced, counted by a jax.monitoring listener


def _count_epoch_traces(event: str, seconds: float, **kwargs) -> None:
    if event == "/jax/core/compile/jaxpr_trace_duration" and kwargs.get("fun_name") == "epoch":
        _TRACES[0] += 1


jax.monitoring.register_event_duration_secs_listener(_count_epoch_traces)


# ---------------------------------------------------------------------------------------------
# Evaluation: counted with scripted policies whose outcome is known


def _head_to_goal(params, state, goal):
    """Point mass: move straight at the goal (the arena has no walls in between)."""
    return jnp.clip(params * (goal - state[:2]), -1.0, 1.0)


def _stand_still(params, state, goal):
    return jnp.zeros_like(goal)


def test_evaluate_counts_success_and_time_at_goal():
    env = make("pointmaze-arena")
    length = env.spec.episode_length
    key = jax.random.PRNGKey(0)
    reach = evaluate.Policy(apply=_head_to_goal, params=jnp.float32(1.0))
    out = evaluate.evaluate_fresh_goals(env, reach, key, 8)
    assert out["success"] == 1.0 and out["final_success"] == 1.0
    # At 0.2 per axis per step it takes at most ~150 steps to cross the arena, then it stays.
    assert 0.8 < out["time_at_goal"] < 1.0
    assert out["steps_at_goal"] == pytest.approx(out["time_at_goal"] * length)
    assert out["episode_steps"] == length and out["final_distance"] < env.spec.success_radius

    still = evaluate.evaluate_fresh_goals(env, evaluate.Policy(_stand_still, None), key, 8)
    # Standing still, an episode is either at the goal for all steps or for none.
    assert still["steps_at_goal"] / length == pytest.approx(still["success"])
    assert still["final_success"] == still["success"] < 0.5

    tasks = evaluate.evaluate_tasks(env, reach, key, 3)
    assert tasks == {"success": 1.0, "task1_success": 1.0}


def test_evaluate_tasks_has_one_metric_per_ogbench_task():
    env = make("pointmaze-medium")
    out = evaluate.evaluate_tasks(env, evaluate.Policy(_stand_still, None), jax.random.key(1), 2)
    assert sorted(out) == ["success"] + [f"task{k}_success" for k in range(1, 6)]
    assert out["success"] == 0.0  # OGBench's task goals are far from their starts
    with pytest.raises(ValueError, match="num_episodes must be an integer >= 1"):
        evaluate.evaluate_fresh_goals(env, evaluate.Policy(_stand_still, None), None, 0)
    with pytest.raises(ValueError, match="no fixed evaluation tasks"):
        evaluate.evaluate_tasks(make("ant"), evaluate.Policy(_stand_still, None), None, 1)


# ---------------------------------------------------------------------------------------------
# Presets and flags


def test_bare_command_is_quickstart_and_env_flag_gives_paper_defaults():
    base, name = base_configs("auto", {}, None)
    assert name == "quickstart" and base == online.QUICKSTART
    given = {"env": "humanoid", "depth": 512}
    base, name = base_configs("auto", given, None)
    cfg, learner = configs_from_flags(base, given)
    assert name == "paper" and cfg.env == "humanoid"
    assert (cfg.num_envs, cfg.unroll_length, cfg.batch_size, cfg.gamma) == (512, 62, 512, 0.99)
    assert (cfg.replay_steps_per_env, cfg.updates_per_step) == (10_000, 800)
    assert learner.network.actor_depth == learner.network.critic_depth == 512
    _, learner = configs_from_flags(base, {"depth": 8, "actor_depth": 4})
    assert (learner.network.actor_depth, learner.network.critic_depth) == (4, 8)


def test_prefill_collects_before_the_first_update(tmp_path):
    """The paper's min_replay_size: 16 prefill steps per env = 2 unrolls of 8 without SGD."""
    args = [
        *TINY,
        "--steps",
        "128",
        "--prefill-steps",
        "16",
        "--eval-every",
        "0",
        "--out",
        str(tmp_path / "run"),
    ]
    result = _run(args)
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    # 4 training steps of 32 env steps; the first 2 only collect: 2 x 2 updates remain.
    assert summary["train_steps"] == 4 and summary["sgd_steps"] == 4
    assert online.PRESETS["paper"][0].prefill_steps == 1000
    assert online.QUICKSTART[0].prefill_steps == 0


def test_eval_env_must_share_the_body_family():
    cfg = online.OnlineConfig(env="ant-big-maze", eval_env="ant-big-maze-eval")
    assert cfg.eval_env == "ant-big-maze-eval"
    with pytest.raises(ValueError, match="another body"):
        online.OnlineConfig(env="ant-big-maze", eval_env="humanoid-u-maze")
    result = CliRunner().invoke(cli, ["online", "--env", "ant", "--eval-env", "humanoid"])
    assert result.exit_code == 2 and "another body" in result.output


def test_paper_humanoid_depth_512_sets_up_without_allocating():
    given = {"env": "humanoid", "depth": 512}
    cfg, learner = configs_from_flags(base_configs("auto", given, None)[0], given)
    setup = online.make_setup(cfg, learner)
    state = jax.eval_shape(lambda k: online.init_state(setup, k), jax.random.PRNGKey(0))
    assert state.replay.data["state"].shape == (10_000, 512, setup.dims.state_dim)
    assert cfg.train_steps == -(-100_000_000 // 31_744)


# ---------------------------------------------------------------------------------------------
# A tiny run end to end


def test_tiny_run_writes_the_run_dir(tmp_path):
    out = tmp_path / "run"
    traces = _TRACES[0]
    # 100 steps -> ceil(100 / 32) = 4 training steps = 128 env steps exactly.
    args = [
        *TINY,
        "--steps",
        "100",
        "--log-every",
        "32",
        "--eval-every",
        "64",
        "--checkpoint-every",
        "64",
        "--out",
        str(out),
    ]
    result = _run(args)
    assert result.exit_code == 0, result.output
    assert _TRACES[0] == traces + 1  # epochs of 1 and 2 steps: one compile
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env_steps"] == 128 and summary["train_steps"] == 4
    assert summary["sgd_steps"] == 8 and summary["stopped"] == "budget"
    assert summary["backend"] == "native" and summary["device"].startswith("cpu")
    assert summary["episode_length"] == 1000  # the final line's steps_at_goal N/1000
    assert f"steps_at_goal {summary['eval/steps_at_goal']:.0f}/1000" in result.output
    for name in ("eval/success", "eval/time_at_goal", "eval_tasks/task5_success"):
        assert 0.0 <= summary[name] <= 1.0
    events = _events(out)
    assert [e["step"] for e in events] == [0, 32, 64, 96, 128]
    assert ["eval/success" in e for e in events] == [True, False, True, False, True]
    assert all(np.isfinite(e["train/critic_loss"]) for e in events[1:])
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"step", "train/critic_loss", "eval/success", "perf/env_steps_per_s"} <= set(header)
    assert [s for s, _ in rundir.list_checkpoints(out / "checkpoints")] == [64, 128]
    stored = json.loads((out / "config.json").read_text())
    assert (
        stored["online"]["env"] == "pointmaze-medium"
        and stored["learner"]["network"]["width"] == 16
    )

    # Resuming a finished run with a larger budget continues it; a different config is refused.
    result = _run([*TINY, "--steps", "160", "--resume", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "summary.json").read_text())["env_steps"] == 160
    # Without the buffer in checkpoints: smaller files; a resume refills an empty buffer.
    assert any(k.startswith(".replay.data") for k in _checkpoint_paths(out))
    traces = _TRACES[0]
    for steps in ("192", "224"):
        result = _run([*TINY, "--steps", steps, "--no-buffer-in-checkpoint", "--resume", str(out)])
        assert result.exit_code == 0, result.output
    assert _TRACES[0] == traces  # budget and checkpoint flags reuse the compile
    assert not any(k.startswith(".replay") for k in _checkpoint_paths(out))
    assert json.loads((out / "summary.json").read_text())["env_steps"] == 224
    result = CliRunner().invoke(cli, ["online", *TINY, "--width", "32", "--resume", str(out)])
    assert result.exit_code == 2
    assert "learner.network.width (stored 16, now 32)" in result.output
    # The same dir without --resume is refused.
    result = CliRunner().invoke(cli, ["online", *TINY, "--steps", "32", "--out", str(out)])
    assert result.exit_code == 2 and "already exists" in result.output


def test_bad_input_is_one_line(tmp_path):
    result = CliRunner().invoke(cli, ["online", "--env", "pointmaze-medum", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "unknown env 'pointmaze-medum'; did you mean 'pointmaze-medium'?" in result.output
    result = CliRunner().invoke(cli, ["online", *TINY, "--depth", "6"])
    assert result.exit_code == 2 and "multiple of 4" in result.output
    assert "--depth must be a positive multiple of 4" in result.output  # the flag typed
    result = CliRunner().invoke(cli, ["online", *TINY, "--replay-steps-per-env", "4"])
    assert result.exit_code == 2 and "must be >= unroll_length" in result.output
    result = CliRunner().invoke(cli, ["online", "--resume", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "no config.json" in result.output


def test_non_finite_loss_stops_and_keeps_the_last_finite_state(tmp_path):
    out = tmp_path / "run"
    # Adam moves every weight by ~lr per update: at 1e30 the next forward pass overflows.
    args = [*TINY, "--steps", "320", "--critic-lr", "1e30", "--actor-lr", "1e30", "--out", str(out)]
    result = CliRunner().invoke(cli, ["online", *args])
    assert result.exit_code == 1
    assert "non-finite loss or parameters at SGD step" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped"] == "non_finite" and summary["env_steps"] < 320
    leaves = _final_checkpoint(out)
    floats = [v for k, v in leaves.items() if k != "__step__" and v.dtype.kind == "f"]
    assert floats and all(np.all(np.isfinite(v)) for v in floats)


# ---------------------------------------------------------------------------------------------
# Kill and resume


@pytest.mark.slow
def test_sigkilled_run_resumes_to_the_same_parameters(tmp_path):
    # 40 training steps of 32 env steps; a checkpoint every 4; evaluation only at both ends.
    args = [
        *TINY,
        "--env",
        "pointmaze-arena",
        "--steps",
        "1280",
        "--seed",
        "3",
        "--log-every",
        "32",
        "--eval-every",
        "0",
        "--checkpoint-every",
        "128",
    ]
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from crlkit.cli.main import cli; cli()",
            "online",
            *args,
            "--out",
            str(killed),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 600
    while not rundir.list_checkpoints(killed / "checkpoints"):
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "no checkpoint within 10 minutes"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "summary.json").exists(), "the run finished before it was killed"
    killed_at = rundir.list_checkpoints(killed / "checkpoints")[-1][0]
    assert killed_at < 1280

    loud = [a for a in args if a != "--quiet"]  # keep the status line saying where it resumed
    result = _run([*loud, "--resume", str(killed)])
    assert result.exit_code == 0, result.output
    assert f"resumed {killed} at env step {killed_at:,}" in result.output
    unbroken = tmp_path / "unbroken"
    assert _run([*args, "--out", str(unbroken)]).exit_code == 0

    _assert_same_final_leaves(unbroken, killed, 1280)
    summary = json.loads((killed / "summary.json").read_text())
    assert summary["env_steps"] == 1280
    assert [e["step"] for e in _events(killed)] == [32 * i for i in range(41)]


def _assert_same_final_leaves(unbroken: Path, other: Path, step: int) -> None:
    a, b = _final_checkpoint(unbroken), _final_checkpoint(other)
    assert int(a.pop("__step__")) == int(b.pop("__step__")) == step and sorted(a) == sorted(b)
    assert any(".learner.critic.params" in p for p in a)
    assert any(p.startswith(".replay.data") for p in a)  # the buffer too
    for k in a:  # params, optimizer states, alpha, RNG, env state and buffer, bit for bit
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def _online_process(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", "from crlkit.cli.main import cli; cli()", "online", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_sigterm_checkpoints_then_resume_equals_an_unbroken_run(tmp_path):
    """SIGTERM mid-run: checkpoint at the chunk boundary, summary "signal", exit 75 with one
    line; --resume then ends where an unbroken run ends, bit for bit."""
    args = [
        *TINY,
        "--env",
        "pointmaze-arena",
        "--steps",
        "1280",
        "--seed",
        "5",
        "--log-every",
        "32",
        "--eval-every",
        "0",
        "--checkpoint-every",
        "640",
    ]
    stopped = tmp_path / "stopped"
    proc = _online_process([*args, "--out", str(stopped)])
    deadline = time.monotonic() + 600
    while not (stopped / "metrics.jsonl").exists() or len(_events(stopped)) < 3:
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "no progress within 10 minutes"
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 75, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "stopped by SIGTERM at env step" in lines[0], err
    summary = json.loads((stopped / "summary.json").read_text())
    assert summary["stopped"] == "signal" and summary["env_steps"] < 1280
    saved = rundir.list_checkpoints(stopped / "checkpoints")[-1][0]
    assert saved == summary["env_steps"]  # the checkpoint is where it stopped, not the last 640

    assert _run([*args, "--resume", str(stopped)]).exit_code == 0
    unbroken = tmp_path / "unbroken"
    assert _run([*args, "--out", str(unbroken)]).exit_code == 0
    _assert_same_final_leaves(unbroken, stopped, 1280)
    assert json.loads((stopped / "summary.json").read_text())["stopped"] == "budget"


# ---------------------------------------------------------------------------------------------
# Learning


@pytest.mark.slow
def test_quickstart_learns_to_reach_fresh_goals(tmp_path):
    result = _run(["--out", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["env"] == "pointmaze-arena"
    assert summary["eval/success"] >= 0.9, summary
