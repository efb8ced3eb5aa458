"""`crlkit collect`: round trips through OGBench's and Minari's own loaders, the scripted expert,
the styles, bad input and a SIGKILL mid-collect."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import minari
import numpy as np
import ogbench
import pytest
from click.testing import CliRunner
from crlkit.cli.main import cli

from crlkit.collect import CollectConfig, MazeGraph, collect
from crlkit.data import minari_io, ogbench_io
from crlkit.data.catalog import load_dataset
from crlkit.data.dataset import DatasetError
from crlkit.envs import make_spec

# Small: 4 envs x 2 episodes of 150 transitions each (+ 1 val episode).
SMALL = dict(
    env="pointmaze-medium",
    policy="expert",
    steps=1200,
    episode_length=150,
    noise=0.5,
    num_envs=4,
    seed=3,
)


@pytest.fixture(scope="module")
def expert_npz(tmp_path_factory):
    out = tmp_path_factory.mktemp("collect") / "pm-expert.npz"
    summary = collect(CollectConfig(**SMALL, out=str(out)), progress=False)
    assert summary["episodes"] == 8 + 1 and summary["steps_per_second"] > 0
    return out


def test_collect_then_ogbench_loader_then_our_reader_identical(expert_npz):
    ours = load_dataset(expert_npz)
    assert (ours.num_episodes, ours.num_rows) == (8, 8 * 151)
    compact = ogbench.utils.load_dataset(str(expert_npz), compact_dataset=True, add_info=True)
    for key in ("observations", "actions", "terminals", "valids"):
        np.testing.assert_array_equal(compact[key], getattr(ours, key), err_msg=key)
    np.testing.assert_array_equal(compact["qpos"], ours.extras["qpos"])
    _, train, val = ogbench.make_env_and_datasets(
        "pointmaze-medium-navigate-v0", dataset_path=str(expert_npz)
    )
    assert train["observations"].shape == (8 * 150, 2) and val["observations"].shape == (150, 2)
    # OGBench's point observation is qpos: the rows agree with the stored physics state.
    np.testing.assert_array_equal(ours.observations, ours.extras["qpos"])


def test_collect_minari_then_minari_loader_then_our_reader(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    summary = collect(CollectConfig(**SMALL, format="minari", out="minari:pm-expert-v0"), False)
    assert summary["paths"] == [str(tmp_path / "pm-expert-v0")]
    mds = minari.load_dataset("pm-expert-v0")
    assert mds.total_episodes == 8 and mds.total_steps == 8 * 150
    meta = mds.storage.metadata
    assert meta["crlkit_env"] == "pointmaze-medium" and meta["crlkit_version"]
    ours = load_dataset("minari:pm-expert-v0")
    for i, ep in enumerate(mds.iterate_episodes()):
        rows = slice(i * 151, (i + 1) * 151)
        np.testing.assert_array_equal(ep.observations["observation"], ours.observations[rows])
        np.testing.assert_array_equal(
            ep.observations["desired_goal"], ours.extras["desired_goals"][rows]
        )
        np.testing.assert_array_equal(ep.actions, ours.actions[rows][:-1])


def test_ogbench_to_minari_to_ogbench_exact(expert_npz, tmp_path):
    og = load_dataset(expert_npz)
    minari_io.write_minari(og, tmp_path / "conv-v0", env_name="pointmaze-medium")
    mi = load_dataset(tmp_path / "conv-v0")
    valid = og.valids > 0
    for key in ("observations", "terminals", "valids", "episode_ends"):
        np.testing.assert_array_equal(getattr(mi, key), getattr(og, key), err_msg=key)
    np.testing.assert_array_equal(mi.actions[valid], og.actions[valid])
    for key in ("qpos", "qvel", "desired_goals"):
        np.testing.assert_array_equal(mi.extras[key], og.extras[key], err_msg=key)
    ogbench_io.write_npz(mi, None, tmp_path / "back.npz")
    a = ogbench.utils.load_dataset(str(expert_npz))
    b = ogbench.utils.load_dataset(str(tmp_path / "back.npz"))
    for key in ("observations", "actions", "next_observations", "terminals"):
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_expert_navigates_like_ogbench(expert_npz):
    ds = load_dataset(expert_npz)
    maze = make_spec("pointmaze-medium").maze
    assert bool(jnp.all(maze.is_free(jnp.asarray(ds.observations))))
    goals = ds.extras["desired_goals"]
    switches = (np.abs(np.diff(goals, axis=0)).sum(1) > 0) & (ds.valids[:-1] > 0)
    # A new goal after every success: OGBench's expert reaches ~1.3 goals per 150 steps here.
    assert switches.sum() >= 4
    # ... and each switch happens right after the point came within the success radius.
    for t in np.flatnonzero(switches):
        assert np.linalg.norm(ds.observations[t + 1] - goals[t]) <= 1.0 + 1e-5


def test_bfs_next_cell_equals_ogbench_oracle_subgoal():
    import gymnasium

    env = gymnasium.make("pointmaze-large-v0").unwrapped
    graph = MazeGraph.build(make_spec("pointmaze-large").maze.array)
    rng = np.random.default_rng(0)
    free = np.argwhere(env.maze_map == 0)
    for _ in range(200):
        start, goal = free[rng.integers(len(free), size=2)]
        sub_xy, _ = env.get_oracle_subgoal(env.ij_to_xy(start), env.ij_to_xy(goal))
        cell = graph.next_cell[goal[0] * graph.cols + goal[1], start[0] * graph.cols + start[1]]
        assert tuple(env.xy_to_ij(sub_xy)) == divmod(int(cell), graph.cols)


def test_stitch_and_explore_styles(tmp_path):
    spec = make_spec("pointmaze-medium")
    graph = MazeGraph.build(spec.maze.array)
    small = {**SMALL, "steps": 200, "episode_length": 50, "val_fraction": 0.0}
    collect(CollectConfig(**small, style="stitch", out=str(tmp_path / "s.npz")), False)
    ds = load_dataset(tmp_path / "s.npz")
    for rows in ds.episodes():
        goal = ds.extras["desired_goals"][rows]
        assert np.all(goal == goal[0])  # one goal per episode
        start, end = (
            np.asarray(spec.maze.xy_to_cell(x)) for x in (ds.observations[rows][0], goal[0])
        )
        d = graph.dist[start[0] * graph.cols + start[1], end[0] * graph.cols + end[1]]
        assert d == 4 or (d == 0 and not (graph.dist[start[0] * graph.cols + start[1]] == 4).any())
    collect(
        CollectConfig(**{**small, "noise": 0.0}, style="explore", out=str(tmp_path / "e.npz")),
        False,
    )
    ds = load_dataset(tmp_path / "e.npz")
    assert "desired_goals" not in ds.extras
    first = ds.actions[:50]  # noise 0: one direction per 10-step block, a new one after
    assert np.allclose(first[:10], first[0]) and not np.allclose(first[10], first[0])
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-4)


def test_random_policy_on_antmaze(tmp_path):
    cfg = CollectConfig(
        env="antmaze-medium",
        steps=40,
        episode_length=20,
        num_envs=2,
        seed=0,
        val_fraction=0.0,
        out=str(tmp_path / "ant.npz"),
    )
    collect(cfg, progress=False)
    ds = load_dataset(tmp_path / "ant.npz")
    assert ds.obs_dim == 29 and ds.action_dim == 8 and ds.num_episodes == 2
    assert np.abs(ds.actions).max() <= 1.0


@pytest.mark.parametrize("style", ["navigate", "stitch"])
def test_goals_are_in_the_envs_goal_space(tmp_path, style):
    """The paper's humanoid maze has torso-xyz goals: collect draws and re-draws them there."""
    cfg = CollectConfig(
        env="humanoid-u-maze",
        style=style,
        steps=20,
        episode_length=10,
        num_envs=2,
        stitch_cells=1,
        val_fraction=0.0,
        out=str(tmp_path / "h.npz"),
    )
    collect(cfg, progress=False)
    ds = load_dataset(tmp_path / "h.npz")
    assert ds.goal_indices == (0, 1, 2) and ds.extras["desired_goals"].shape == (22, 3)
    np.testing.assert_allclose(ds.extras["desired_goals"][:, 2], 1.25)  # the paper's target z


# ----------------------------------------------------------------------------------- bad input


def _invoke(*args):
    return CliRunner().invoke(cli, ["collect", "--quiet", *args])


def test_cli_bad_input_exit_2_one_line(tmp_path):
    out = str(tmp_path / "x.npz")
    cases = {
        ("--env", "antmze-large", "--out", out): "unknown env 'antmze-large'",
        ("--env", "antmaze-large", "--policy", "expert", "--out", out): "scripted point-maze",
        ("--env", "pointmaze-medium", "--out", str(tmp_path / "x.h5")): "must end in .npz",
        ("--env", "pointmaze-medium", "--policy", "nowhere", "--out", out): "nor a run directory",
        ("--env", "pointmaze-medium", "--steps", "0", "--out", out): "--steps must be >= 1",
        ("--out", out): "--env is required",
        (): "--env and --out are required, e.g. crlkit collect --env pointmaze-medium",
    }
    for args, problem in cases.items():
        res = _invoke(*args)
        assert res.exit_code == 2, (args, res.output)
        error_lines = [line for line in res.output.splitlines() if line.startswith("Error:")]
        assert len(error_lines) == 1 and problem in error_lines[0], res.output
    assert os.listdir(tmp_path) == []


def test_existing_output_is_not_overwritten(expert_npz):
    before = expert_npz.read_bytes()
    res = _invoke("--env", "pointmaze-medium", "--steps", "10", "--out", str(expert_npz))
    assert res.exit_code == 2 and "already exists; pass --overwrite" in res.output
    assert expert_npz.read_bytes() == before


def test_killed_collect_leaves_no_complete_looking_output(tmp_path):
    out = tmp_path / "killed.npz"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from crlkit.cli.main import cli; cli()",
            "collect",
            "--env",
            "pointmaze-medium",
            "--steps",
            "10000000",
            "--episode-length",
            "1000",
            "--num-envs",
            "8",
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 180
        seen = ""
        # Wait until a status line (stdout) reports a measured rate: rollouts are under way.
        while not re.search(r"\d env steps/s", seen):
            assert proc.poll() is None and time.time() < deadline, seen
            seen += proc.stdout.read(1)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert all(name.startswith(".") for name in os.listdir(tmp_path))
    with pytest.raises(DatasetError, match="file not found"):
        load_dataset(out)


def test_collected_rows_reproduce_env_steps():
    """Replaying a dataset's actions from its stored physics state reproduces the next rows."""
    from crlkit.envs import make

    ds = load_dataset("pointmaze-medium-navigate-sample")
    env = make("pointmaze-medium").unwrapped
    s = env.reset(jax.random.PRNGKey(0))
    for t in range(0, 50):
        physics = s.physics.replace(
            qpos=jnp.asarray(ds.extras["qpos"][t]), qvel=jnp.asarray(ds.extras["qvel"][t])
        )
        nxt = env.step(s.replace(physics=physics), jnp.asarray(ds.actions[t]))
        np.testing.assert_allclose(nxt.obs[:2], ds.observations[t + 1], atol=1e-5)


def _run_dir(tmp_path, state_dim=2, goal_dim=2, action_dim=2):
    """A real run directory: config.json + one checkpoint of a freshly initialised learner."""
    from crlkit import learner
    from crlkit.config import LearnerConfig, NetworkConfig
    from crlkit.runs.rundir import RunDir

    cfg = LearnerConfig(network=NetworkConfig(width=32))
    dims = learner.Dims(state_dim, goal_dim, action_dim)
    nets = learner.make_networks(cfg, dims)
    state = learner.init(nets, cfg, dims, jax.random.PRNGKey(1))
    run = RunDir.create(tmp_path / "run", {"learner": cfg})
    run.save_checkpoint({"learner": state, "env_steps": 0}, step=0)
    return tmp_path / "run", nets, state.actor.params


def test_checkpoint_policy_acts_with_the_runs_actor(tmp_path):
    from crlkit import learner

    run, nets, params = _run_dir(tmp_path)
    out = tmp_path / "ckpt.npz"
    cfg = CollectConfig(
        env="pointmaze-medium",
        policy=str(run),
        steps=40,
        episode_length=20,
        noise=0.0,
        num_envs=2,
        val_fraction=0.0,
        out=str(out),
    )
    collect(cfg, progress=False)
    ds = load_dataset(out)
    want = learner.act(
        nets,
        params,
        jnp.asarray(ds.observations),
        jnp.asarray(ds.extras["desired_goals"]),
        jax.random.PRNGKey(0),
        True,
    )
    np.testing.assert_allclose(ds.actions, np.asarray(want), atol=1e-5)
    res = _invoke("--env", "antmaze-medium", "--policy", str(run), "--out", str(tmp_path / "a.npz"))
    assert res.exit_code == 2 and "needs" in res.output and "another env" in res.output
    assert not (tmp_path / "a.npz").exists()


def test_sample_rows_match_ogbench_own_env():
    """OGBench's pointmaze, put in each row's stored state and given its action, observes the
    dataset's next row: crlkit's observation is OGBench's."""
    import gymnasium

    ds = load_dataset("pointmaze-medium-navigate-sample")
    env = gymnasium.make("pointmaze-medium-v0").unwrapped
    env.reset(seed=0)
    for t in range(0, 3000, 7):
        if not ds.valids[t]:
            continue
        env.set_state(
            ds.extras["qpos"][t].astype(np.float64), ds.extras["qvel"][t].astype(np.float64)
        )
        ob, *_ = env.step(ds.actions[t].astype(np.float64))
        np.testing.assert_allclose(ob, ds.observations[t + 1], atol=1e-5)
