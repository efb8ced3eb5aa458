"""The offline loop: per-dataset defaults, samplers, one compilation, run dirs, CLI, learning."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from click.testing import CliRunner
from crlkit.cli.main import cli

from crlkit import learner
from crlkit.config import LearnerConfig, NetworkConfig
from crlkit.data import minari_io, ogbench_io
from crlkit.data import plan as data_plan
from crlkit.data.catalog import load_dataset
from crlkit.data.dataset import from_raw
from crlkit.runs.checkpoint import Checkpoints
from crlkit.train import hostloop, offline
from crlkit.train.offline import chunks, evaluators, gym_eval, sampling
from crlkit.train.offline import config as offline_config
from crlkit.train.offline import loop as offline_loop

SAMPLE = "pointmaze-medium-navigate-sample"
TINY_NET = NetworkConfig(width=16, actor_depth=4, critic_depth=4, repr_dim=8)
TINY = LearnerConfig(network=TINY_NET, actor_loss="ddpg_bc")


def episodes_dataset(lengths=(6, 4, 9), name="toy-navigate", env="pointmaze-medium", obs_dim=2):
    """Observations encode (episode, time): column 0 = episode id, column 1 = step in episode."""
    n = sum(lengths)
    episode = np.repeat(np.arange(len(lengths)), lengths)
    step = np.concatenate([np.arange(k) for k in lengths])
    obs = np.zeros((n, obs_dim), np.float32)
    obs[:, 0], obs[:, 1] = episode, step
    final = np.zeros(n, bool)
    final[np.cumsum(lengths) - 1] = True
    actions = np.random.default_rng(0).uniform(-0.9, 0.9, (n, 2)).astype(np.float32)
    meta = {"name": name, "env": env} if env else {"name": name}
    return from_raw(obs, actions, final, goal_indices=(0, 1), source=name, metadata=meta)


def resolved(ds, **kw):
    return offline.resolve(offline.OfflineConfig(dataset=ds.name, **kw), TINY, ds)


# ------------------------------------------------------------------------------ defaults


@pytest.mark.parametrize(
    "name, env, alpha, discount, p_random",
    [
        ("pointmaze-medium-navigate-v0", "pointmaze-medium", 0.03, 0.99, 0.0),
        ("antmaze-large-navigate-v0", "antmaze-large", 0.1, 0.99, 0.0),
        ("antmaze-giant-stitch-v0", "antmaze-giant", 0.1, 0.995, 0.5),
        ("antmaze-medium-explore-v0", "antmaze-medium", 0.003, 0.99, 1.0),
        ("humanoidmaze-medium-navigate-v0", "humanoidmaze-medium", 0.1, 0.995, 0.0),
        ("cube-single-play-v0", None, 3.0, 0.99, 0.0),
        ("cube-single-noisy-v0", None, 0.1, 0.99, 0.0),
    ],
)
def test_ogbench_defaults_per_family(name, env, alpha, discount, p_random):
    cfg, lcfg = resolved(episodes_dataset(name=name, env=env))
    assert (cfg.alpha, lcfg.bc_alpha, cfg.discount, cfg.actor_p_random) == (
        alpha,
        alpha,
        discount,
        p_random,
    )
    assert cfg.steps == offline_config.OGBENCH_STEPS and cfg.batch_size == 1024


def test_explicit_settings_win_and_samples_get_the_quick_budget():
    ds = load_dataset(SAMPLE)
    cfg, lcfg = resolved(ds)
    assert cfg.steps == offline_config.SAMPLE_STEPS and lcfg.bc_alpha == 0.03
    cfg, lcfg = resolved(ds, steps=7, alpha=0.0, discount=0.9, actor_p_random=0.25)
    assert (cfg.steps, lcfg.bc_alpha, cfg.discount, cfg.actor_goals().p_random) == (7, 0, 0.9, 0.25)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"eval_episodes": 0}, "--eval-episodes must be an integer >= 1"),
        ({"batch_size": 0}, "--batch-size"),
        ({"discount": 1.0}, "--discount"),
        ({"sampler": "gpu"}, "unknown sampler"),
    ],
)
def test_bad_settings_are_one_line_errors(kw, match):
    with pytest.raises(ValueError, match=match) as err:
        offline.OfflineConfig(dataset=SAMPLE, **kw)
    assert "\n" not in str(err.value)


def test_goal_shares_must_leave_room_for_trajectory_goals():
    with pytest.raises(ValueError, match="--actor-p-current 0.7 and --actor-p-random 0.5"):
        resolved(episodes_dataset(), actor_p_current=0.7, actor_p_random=0.5)


# ------------------------------------------------------------------------------ sampling


@pytest.mark.parametrize("sampler", ["device", "host"])
def test_batches_pair_states_with_goals_from_their_own_future(sampler):
    ds = episodes_dataset()
    cfg, _ = resolved(ds, batch_size=512)
    data = offline.dataset_arrays(ds)
    if sampler == "device":
        batch = offline.sample_batch(cfg, jax.device_put(data), jax.random.PRNGKey(3))
    else:
        block = sampling.sample_host_block(cfg, data, np.random.default_rng(3), 1)
        batch = jax.tree.map(lambda x: x[0], block)
    state, goal, actor_goal = map(np.asarray, (batch.state, batch.goal, batch.actor_goal))
    lengths = np.array((6, 4, 9))  # episodes_dataset's episodes
    for g in (goal, actor_goal):
        assert (g[:, 0] == state[:, 0]).all()  # same episode
        # Later, or the state itself on an episode's last valid row (OGBench's final_state_idxs);
        # never the final row, which has no action.
        assert (g[:, 1] >= state[:, 1]).all()
        assert (g[:, 1] < lengths[g[:, 0].astype(int)] - 1).all()
        later = g[:, 1] > state[:, 1]
        assert (later | (state[:, 1] == lengths[state[:, 0].astype(int)] - 2)).all()
    # Actor goals are uniform over the future; critic goals geometric (gamma 0.99 ~ uniform here).
    assert batch.action.shape == (512, 2)


@pytest.mark.slow  # compiles the update (twice): 30 s to 3 min on a shared 2-core CPU
def test_device_and_host_chunks_compile_once_and_apply_the_same_updates():
    """Chunks of any length reuse one executable; the host path gives the device path's result
    when fed the device sampler's own minibatches."""
    ds = episodes_dataset()
    cfg, lcfg = resolved(ds, batch_size=8)
    nets = learner.make_networks(lcfg, offline_loop.dims_of(ds))
    data = offline.dataset_arrays(ds)
    state = learner.init(nets, lcfg, offline_loop.dims_of(ds), jax.random.PRNGKey(0))
    key = jax.random.PRNGKey(1)
    device = chunks.Trainer(nets, lcfg, cfg, data, "device")
    host = chunks.Trainer(nets, lcfg, cfg, data, "host")
    fresh = lambda: chunks.Carry(learner=jax.tree.map(jnp.copy, state), key=jnp.copy(key))
    device.compile(fresh())
    host.compile(fresh())
    compiled = device.compiled  # ahead of time: a new shape would raise, not recompile

    # The device chunk splits (next key, sample key) off its key at every step.
    keys, k = [], key
    for _ in range(9):
        k, sample_key = jax.random.split(k)
        keys.append(sample_key)
    carry = fresh()
    for start, n in ((0, 3), (3, 5), (8, 1)):
        carry, stats, bad = device.run(carry, start, n)
        metrics = chunks.means(stats)
    assert int(carry.learner.step) == 9 and device.compiled is compiled and bad == -1
    assert np.isfinite(metrics["critic_loss"]) and "actor_bc_loss" in metrics

    batches = [offline.sample_batch(cfg, device.data, sk) for sk in keys]
    batches += batches[:1] * (chunks.HOST_BLOCK - len(batches))  # padding, never run
    block = jax.tree.map(lambda *x: jnp.stack(x), *batches)
    out, sums, kept, bad = host.compiled(fresh(), block, jnp.int32(9))
    assert int(out.learner.step) == 9 and np.isfinite(float(sums["critic_loss"]))
    assert (float(kept), int(bad)) == (9.0, -1)
    for a, b in zip(jax.tree.leaves(carry.learner), jax.tree.leaves(out.learner), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)
    carry, stats, bad = host.run(out, 9, 70)  # spans two host blocks
    metrics = chunks.means(stats)
    assert int(carry.learner.step) == 79 and np.isfinite(metrics["critic_loss"]) and bad == -1
    # Host blocks are aligned to absolute steps: chunks cut anywhere sample the same batches.
    whole, _, _ = host.run(fresh(), 0, 100)
    cut = fresh()
    for start, n in ((0, 30), (30, 1), (31, 69)):
        cut, _, _ = host.run(cut, start, n)
    for a, b in zip(jax.tree.leaves(whole.learner), jax.tree.leaves(cut.learner), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_chunk_boundaries_hit_every_log_eval_and_checkpoint_step():
    ends, step = [], 0
    while step < 23:
        step = hostloop.next_boundary(step, 23, 5, 10, 0)
        ends.append(step)
    assert ends == [5, 10, 15, 20, 23]


def test_projection_line_is_always_one_line_and_hints_at_a_gpu_when_long():
    short = hostloop.projection_line(1000.0, "SGD steps", 100_000, 100.0, "cpu")
    assert short == (
        "1,000 SGD steps/s in the first chunk: the budget of 100,000 SGD steps projects to 100 s "
        "on this CPU"
    )
    long = hostloop.projection_line(500.0, "env steps", 100_000_000, 200_000.0, "cpu", True)
    assert "projects to at least 55.6 h on this CPU" in long and "\n" not in long
    assert "no SGD update timed yet" in long and "the paper's settings need a GPU" in long
    gpu = hostloop.projection_line(18_800.0, "env steps", 100_000_000, 5319.0, "gpu")
    assert gpu.endswith("projects to 89 min on this GPU")


def test_stop_signals_set_a_flag_and_give_the_handlers_back():
    import os
    import threading

    before = {sig: signal.getsignal(sig) for sig in hostloop.STOP_SIGNALS}
    with hostloop.StopSignals() as stop:
        assert signal.getsignal(signal.SIGTERM) is not before[signal.SIGTERM]
        os.kill(os.getpid(), signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while stop.received is None and time.monotonic() < deadline:
            time.sleep(0.001)
        assert hostloop.agree(stop.received, 7) == (signal.SIGUSR1, 7)
    assert {sig: signal.getsignal(sig) for sig in hostloop.STOP_SIGNALS} == before
    seen = []  # outside the main thread nothing is installed (Python only allows it there)

    def elsewhere():
        with hostloop.StopSignals():
            seen.append(signal.getsignal(signal.SIGTERM))

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert seen == [before[signal.SIGTERM]]


# ------------------------------------------------------------------------------ evaluation


def test_eval_target_prefers_crlkit_envs_and_falls_back_to_ogbench_gym():
    assert data_plan.eval_target(episodes_dataset()) == ("crlkit", "pointmaze-medium")
    cube = episodes_dataset(name="cube-single-play-v0", env=None)
    assert data_plan.eval_target(cube) == ("ogbench", "cube-single-v0")
    via_id = episodes_dataset(name="antmaze-large-navigate-v0", env=None)
    assert data_plan.eval_target(via_id) == ("crlkit", "antmaze-large")
    with pytest.raises(ValueError, match="names no env to evaluate in; pass --env"):
        data_plan.eval_target(episodes_dataset(name="mine", env=None))


def test_minari_datasets_are_evaluated_in_the_env_they_name(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    minari_io.write_minari(
        episodes_dataset(lengths=(30, 40)), "minari:toy/pm-v0", env_name="pointmaze-medium"
    )
    ds = load_dataset("minari:toy/pm-v0")
    cfg, lcfg = resolved(ds)
    assert data_plan.eval_target(ds, cfg.env) == ("crlkit", "pointmaze-medium")
    assert lcfg.bc_alpha == 0.03 and cfg.steps == offline_config.OGBENCH_STEPS


def test_gym_fallback_is_seeded_and_reports_every_task():
    ds = episodes_dataset(name="pointmaze-medium-navigate-v0")
    cfg, lcfg = resolved(ds, eval_episodes=2)
    evaluator = evaluators._gym_evaluator(cfg, ds, "pointmaze-medium-v0")
    nets = learner.make_networks(lcfg, offline_loop.dims_of(ds))
    params = learner.init(nets, lcfg, offline_loop.dims_of(ds), jax.random.PRNGKey(0)).actor.params
    first = evaluator(nets, params, jax.random.PRNGKey(5))
    assert set(first) == {"success", *(f"task{k}_success" for k in range(1, 6))}
    assert first == evaluator(nets, params, jax.random.PRNGKey(5))


def test_gym_fallback_checks_sizes():
    ds = episodes_dataset(name="pointmaze-medium-navigate-v0", obs_dim=3)
    cfg, _ = resolved(ds, eval_episodes=1)
    with pytest.raises(ValueError, match="observation size 3 does not match env"):
        evaluators._gym_evaluator(cfg, ds, "pointmaze-medium-v0")


def test_gym_envs_without_tasks_are_refused():
    env = gym_eval.make_gym_env("pointmaze-medium-v0")
    assert gym_eval.env_sizes(env) == (2, 2, 5)
    with pytest.raises(ValueError, match="cannot make OGBench env 'nomaze-v0'"):
        gym_eval.make_gym_env("nomaze-v0")


# ------------------------------------------------------------------------------ CLI and run dirs

TINY_FLAGS = ["--width", "16", "--depth", "8", "--repr-dim", "8", "--batch-size", "16"]


def write_npz(path, ds):
    ogbench_io.write_npz(ds, ds, path)
    return str(path)


def invoke(*args, env=None):
    return CliRunner().invoke(cli, ["offline", *args, "--quiet"], env=env)


def test_cli_trains_evaluates_checkpoints_and_resumes(tmp_path):
    data = write_npz(tmp_path / "toy-navigate.npz", episodes_dataset(lengths=(30, 40, 50)))
    out = tmp_path / "run"
    flags = [*TINY_FLAGS, "--dataset", data, "--env", "pointmaze-medium", "--out", str(out)]
    sinks = ["--tensorboard", "--tags", "toy", "--group", "cli"]  # offline takes them as online
    first = invoke(*flags, "--steps", "6", "--log-every", "3", "--eval-episodes", "1", *sinks)
    assert first.exit_code == 0, first.output
    board = b"".join(p.read_bytes() for p in (out / "tensorboard").iterdir())
    assert b"train/critic_loss" in board and b"tags: toy" in board and b"group: cli" in board
    assert "success" in first.output and str(out) in first.output
    config = json.loads((out / "config.json").read_text())
    assert config["learner"]["actor_loss"] == "ddpg_bc" and config["offline"]["alpha"] == 0.03
    assert config["learner"]["network"]["critic_depth"] == 8  # --depth reaches the learner
    assert config["learner"]["network"]["actor_depth"] == 8
    assert config["dataset"]["eval_env"] == ["crlkit", "pointmaze-medium"]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["ckpt_000000000006"]
    again = invoke(
        *flags, "--steps", "9", "--log-every", "3", "--eval-episodes", "1", "--resume", str(out)
    )
    assert again.exit_code == 0, again.output
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [e["step"] for e in events if "train/critic_loss" in e] == [3, 6, 9]
    assert [e["step"] for e in events if "eval/success" in e] == [6, 9]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sgd_steps"] == 9 and 0.0 <= summary["eval/success"] <= 1.0
    changed = invoke(*flags, "--steps", "9", "--eval-episodes", "2", "--resume", str(out))
    assert changed.exit_code == 2 and "offline.eval_episodes" in changed.output


def test_cli_non_finite_loss_stops_and_keeps_the_last_finite_state(tmp_path):
    data = write_npz(tmp_path / "toy-navigate.npz", episodes_dataset(lengths=(30, 40, 50)))
    out = tmp_path / "run"
    # Adam moves every weight by ~lr per update: at 1e30 a later forward pass overflows.
    flags = [
        *TINY_FLAGS,
        "--dataset",
        data,
        "--env",
        "pointmaze-medium",
        "--out",
        str(out),
        "--steps",
        "50",
        "--eval-episodes",
        "1",
        "--critic-lr",
        "1e30",
        "--actor-lr",
        "1e30",
    ]
    result = invoke(*flags)
    assert result.exit_code == 1, result.output
    assert "non-finite loss or parameters at SGD step" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped"] == "non_finite" and summary["sgd_steps"] < 50
    (ckpt,) = (out / "checkpoints").iterdir()
    assert ckpt.name == f"ckpt_{summary['sgd_steps']:012d}"
    ckpts = Checkpoints(out / "checkpoints")
    floats = [v for v in ckpts.load_leaves(summary["sgd_steps"]).values() if v.dtype.kind == "f"]
    ckpts.close()
    assert floats and all(np.all(np.isfinite(v)) for v in floats)


SIGNAL_RUN = [
    "--dataset",
    "pointmaze-medium-navigate-sample",
    "--steps",
    "3000",
    "--batch-size",
    "32",
    "--width",
    "16",
    "--depth",
    "4",
    "--log-every",
    "10",
    "--eval-every",
    "0",
    "--eval-episodes",
    "1",
    "--seed",
    "2",
    "--quiet",
]


def _leaves(out) -> dict:
    ckpts = Checkpoints(out / "checkpoints")
    step = ckpts.steps()[-1]
    leaves = ckpts.load_leaves(step)
    ckpts.close()
    return {**leaves, "__step__": step}


@pytest.mark.slow  # three short offline runs, one in a subprocess: ~1-2 min on 2 cores
def test_sigterm_checkpoints_then_resume_equals_an_unbroken_run(tmp_path):
    stopped = tmp_path / "stopped"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from crlkit.cli.main import cli; cli()",
            "offline",
            *SIGNAL_RUN,
            "--out",
            str(stopped),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 600
    metrics = stopped / "metrics.jsonl"
    while not metrics.exists() or len(metrics.read_text().splitlines()) < 3:
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "no progress within 10 minutes"
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 75, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "stopped by SIGTERM at SGD step" in lines[0], err
    summary = json.loads((stopped / "summary.json").read_text())
    assert summary["stopped"] == "signal" and 0 < summary["sgd_steps"] < 3000
    assert _leaves(stopped)["__step__"] == summary["sgd_steps"]

    again = invoke(*SIGNAL_RUN, "--resume", str(stopped))
    assert again.exit_code == 0, again.output
    unbroken = tmp_path / "unbroken"
    assert invoke(*SIGNAL_RUN, "--out", str(unbroken)).exit_code == 0
    a, b = _leaves(unbroken), _leaves(stopped)
    assert a["__step__"] == b["__step__"] == 3000 and sorted(a) == sorted(b)
    for k in a:  # params, optimizer states, alpha, sampling key, bit for bit
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_resume_refuses_a_budget_below_the_progress_and_all_unreadable(tmp_path):
    data = write_npz(tmp_path / "toy-navigate.npz", episodes_dataset(lengths=(30, 40, 50)))
    out = tmp_path / "run"
    flags = [
        *TINY_FLAGS,
        "--dataset",
        data,
        "--env",
        "pointmaze-medium",
        "--out",
        str(out),
        "--eval-episodes",
        "1",
    ]
    assert invoke(*flags, "--steps", "6").exit_code == 0
    line = one_line_error(invoke(*flags, "--steps", "4", "--resume", str(out)))
    assert line.endswith("it is already at step 6; give --steps of at least 6")
    assert json.loads((out / "config.json").read_text())["offline"]["steps"] == 6
    for f in (out / "checkpoints" / "ckpt_000000000006" / "state").rglob("*"):
        if f.is_file():
            f.write_bytes(b"")
    line = one_line_error(invoke(*flags, "--steps", "8", "--resume", str(out)))
    assert "every checkpoint is unreadable" in line and "--start-over" in line
    restarted = invoke(*flags, "--steps", "8", "--resume", str(out), "--start-over")
    assert restarted.exit_code == 0, restarted.output
    assert json.loads((out / "summary.json").read_text())["sgd_steps"] == 8


def one_line_error(result):
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1, result.output
    return lines[0]


def test_cli_bad_input_is_one_line_with_exit_code_2(tmp_path):
    wide = write_npz(tmp_path / "wide.npz", episodes_dataset(obs_dim=3))
    line = one_line_error(invoke("--dataset", wide, "--env", "pointmaze-medium"))
    assert "observation size 3 does not match env 'pointmaze-medium'" in line
    raw = tmp_path / "pointmaze-medium-navigate-v0.npz"  # the card supplies the goal slice
    np.savez(
        raw,
        observations=np.zeros((5, 2), np.float32),
        actions=np.zeros((5, 2), np.float32),
        terminals=np.zeros(5, bool),
    )
    assert "no complete episode" in one_line_error(invoke("--dataset", str(raw)))
    line = one_line_error(invoke("--dataset", SAMPLE, "--eval-episodes", "0"))
    assert "--eval-episodes must be an integer >= 1, got 0" in line
    assert "got 6" in one_line_error(invoke("--dataset", SAMPLE, "--depth", "6"))
    line = one_line_error(invoke("--depth", "6"))  # bare: the quick start's dataset and preset
    assert "got 6" in line
    with pytest.raises(ValueError, match="--resume needs --out"):
        offline.run(offline.OfflineConfig(dataset=SAMPLE), TINY, resume=True)
    line = one_line_error(invoke("--resume", str(tmp_path / "nothing")))
    assert "cannot resume" in line and "no config.json" in line
    line = one_line_error(invoke("--dataset", SAMPLE, "--env", "pointmaze-mediun"))
    assert "did you mean 'pointmaze-medium'" in line


def test_the_quick_start_is_the_default_on_shipped_samples_only():
    bare = offline_config.choose_preset(offline.OfflineConfig())
    assert (bare.dataset, bare.preset) == (SAMPLE, "quickstart")
    sample = offline_config.choose_preset(offline.OfflineConfig(dataset=SAMPLE))
    assert sample.preset == "quickstart"
    real = offline_config.choose_preset(offline.OfflineConfig(dataset="antmaze-large"))
    assert (real.dataset, real.preset) == ("antmaze-large", "paper")
    chosen = offline.OfflineConfig(dataset=SAMPLE, preset="ogbench")
    assert offline_config.choose_preset(chosen).preset == "ogbench"
    quick = offline_config.preset_learner("quickstart")
    assert quick.network.width == 128 and quick.num_critics == 1 and quick.actor_loss == "ddpg_bc"
    assert quick.critic_lr == quick.actor_lr == 3e-3
    assert bare.steps == offline_config.QUICKSTART_STEPS == 8000 and sample.steps == 8000
    assert offline_config.choose_preset(dataclasses.replace(bare, steps=5)).steps == 5


def test_cli_antmaze_large_offline_message_when_files_are_missing(tmp_path):
    line = one_line_error(invoke("--dataset", "antmaze-large", "--data-dir", str(tmp_path)))
    assert "antmaze-large-navigate-v0" in line and "not found in" in line
    # Where to fetch the two files by hand: OGBench's own download location (ogbench.utils).
    files = "antmaze-large-navigate-v0.npz and antmaze-large-navigate-v0-val.npz"
    assert f"{files} by hand from https://rail.eecs.berkeley.edu/datasets/ogbench/" in line


@pytest.mark.slow  # collects ant data, compiles the update and an ant rollout: 20 s to 2 min
def test_cli_antmaze_large_as_written_when_the_files_are_present(tmp_path):
    """OGBench's cache holding antmaze-large-navigate-v0 (here: a tiny stand-in) is all it needs."""
    from crlkit import collect

    cache = tmp_path / "home" / ".ogbench" / "data"
    cache.mkdir(parents=True)
    target = cache / "antmaze-large-navigate-v0.npz"
    collect.collect(
        collect.CollectConfig(
            env="antmaze-large", steps=40, episode_length=20, num_envs=2, out=str(target)
        ),
        progress=False,
    )
    out = tmp_path / "run"
    result = invoke(
        "--dataset",
        "antmaze-large",
        "--steps",
        "2",
        "--eval-episodes",
        "1",
        "--out",
        str(out),
        *TINY_FLAGS,
        env={"HOME": str(tmp_path / "home")},
    )
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["dataset"]["name"] == "antmaze-large-navigate-v0"
    assert config["learner"]["bc_alpha"] == 0.1 and config["dataset"]["obs_dim"] == 29


def test_cli_help_documents_every_flag_and_the_offline_defaults():
    result = CliRunner().invoke(cli, ["offline", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for flag in (
        "--dataset",
        "--data-dir",
        "--depth",
        "--actor-depth",
        "--critic-depth",
        "--width",
        "--batch-size",
        "--steps",
        "--alpha",
        "--energy",
        "--contrastive-loss",
        "--eval-every",
        "--eval-episodes",
        "--seed",
        "--out",
        "--resume",
        "--backend",
    ):
        assert flag in result.output
    assert "--bc-alpha" not in result.output
    assert "[default: ddpg_bc]" in result.output.split("--actor-loss")[1].split("--")[0]


# ------------------------------------------------------------------------------ learning


@pytest.mark.slow
def test_offline_crl_learns_pointmaze_from_the_shipped_sample(tmp_path):
    """A bare `crlkit offline` (the quickstart preset on the shipped sample: 8,000 SGD steps at
    batch 1024) beats the untrained actor by >= 0.25 success on OGBench's 5 tasks (25 episodes
    each). Measured with 50 episodes per task: 0.00 untrained, 0.436 trained (seed 0;
    docs/offline.md)."""
    ds = load_dataset(SAMPLE)
    bare = offline.OfflineConfig(eval_episodes=25, out=str(tmp_path / "run"), eval_every=0)
    cfg = offline_config.choose_preset(bare)
    assert cfg.preset == "quickstart"
    plan = data_plan.plan_dataset(ds, **cfg.dataset_choices())
    cfg, lcfg = offline_config.apply_plan(cfg, offline_config.preset_learner(cfg.preset), plan)
    evaluator = evaluators.make_evaluator(cfg, ds, plan)
    nets = learner.make_networks(lcfg, offline_loop.dims_of(ds))
    untrained = offline_loop.initial_carry(nets, lcfg, offline_loop.dims_of(ds), cfg.seed).learner
    key = offline_loop.eval_key(cfg.seed, cfg.steps)  # the key of the run's final evaluation
    before = evaluator(nets, untrained.actor.params, key)["success"]
    summary = offline.train(cfg, lcfg, ds, evaluator, progress=False)
    assert summary["sgd_steps"] == offline_config.QUICKSTART_STEPS
    assert summary["eval/success"] >= before + 0.25, (before, summary)
