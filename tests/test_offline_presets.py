"""Offline presets (paper, ogbench, same-as-online), datasets crlkit did not write, bad input."""

from __future__ import annotations

import json
import os
import shutil

import gymnasium
import minari
import numpy as np
import ogbench  # noqa: F401  (registers OGBench's env ids with gymnasium)
import pytest
from click.testing import CliRunner
from crlkit.cli.main import cli

from crlkit.data import catalog
from crlkit.data import plan as data_plan
from crlkit.data.catalog import load_dataset
from crlkit.train.offline import config as offline_config

SAMPLE = "pointmaze-medium-navigate-sample"
QUICK = [
    "--steps",
    "4",
    "--batch-size",
    "32",
    "--eval-episodes",
    "1",
    "--log-every",
    "2",
    "--eval-every",
    "0",
    "--quiet",
]


def _offline(*args: str):
    return CliRunner().invoke(cli, ["offline", *args])


def test_ogbench_preset_is_ogbench_crl_agent(tmp_path):
    out = tmp_path / "run"
    result = _offline("--preset", "ogbench", "--dataset", SAMPLE, *QUICK, "--out", str(out))
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    lcfg, net = config["learner"], config["learner"]["network"]
    assert lcfg["num_critics"] == 2 and lcfg["contrastive_loss"] == "binary_nce"
    assert lcfg["energy"] == "dot" and lcfg["scale_energy"] is True
    assert lcfg["actor_dist"] == "gaussian_const_std" and lcfg["actor_loss"] == "ddpg_bc"
    assert (net["tower"], net["width"], net["critic_depth"], net["actor_depth"]) == (
        "mlp",
        512,
        3,
        3,
    )
    assert net["repr_dim"] == 512 and net["activation"] == "gelu"
    assert config["offline"]["goal_space"] == "observation"
    assert lcfg["bc_alpha"] == 0.03  # OGBench's pointmaze weight
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    logged = {k for e in events for k in e}
    assert "train/bc_alpha" in logged and "train/alpha" not in logged


def test_paper_preset_is_the_default_beyond_the_samples_and_depth_is_its_axis(tmp_path):
    own = tmp_path / "pm.npz"  # the sample's rows in a file of the user's: not a shipped sample
    shutil.copy(catalog.local_path(catalog.load_catalog()[SAMPLE]), own)
    out = tmp_path / "run"
    flags = ["--env", "pointmaze-medium", "--depth", "8", "--width", "16", *QUICK]
    result = _offline("--dataset", str(own), *flags, "--out", str(out))
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    net = config["learner"]["network"]
    assert config["offline"]["preset"] == "paper" and net["tower"] == "residual"
    assert (net["critic_depth"], net["actor_depth"], net["width"]) == (8, 8, 16)
    assert config["learner"]["num_critics"] == 2  # OGBench's agent around the paper's towers


def test_same_as_online_preset_keeps_the_online_learner():
    base = offline_config.preset_learner("same-as-online")
    assert base.num_critics == 1 and base.energy == "l2" and base.actor_loss == "ddpg_bc"
    cfg = offline_config.OfflineConfig(dataset="x", preset="same-as-online")
    ds = load_dataset(SAMPLE)
    cfg, _ = offline_config.resolve(cfg, base, ds)
    assert cfg.goal_space == "slice"


def test_bad_preset_and_goal_indices_are_one_line_errors(tmp_path):
    result = _offline("--preset", "d4rl", "--dataset", SAMPLE)
    assert result.exit_code == 2 and "'d4rl' is not one of" in result.output
    result = _offline("--dataset", SAMPLE, "--goal-indices", "0,x", "--out", str(tmp_path / "a"))
    assert result.exit_code == 2 and "--goal-indices '0,x'" in result.output
    assert not (tmp_path / "a").exists()


def _collector_dataset(dataset_id: str, env_id: str, episodes: int = 3, steps: int = 40):
    """A Minari dataset written by Minari's own DataCollector around a gymnasium env, with random
    actions (into $MINARI_DATASETS_PATH)."""
    env = gymnasium.make(env_id, max_episode_steps=steps)
    collector = minari.DataCollector(env)
    rng = np.random.default_rng(0)
    for seed in range(episodes):
        collector.reset(seed=seed)
        done = False
        while not done:
            action = rng.uniform(-1, 1, 2).astype(np.float32)
            _, _, terminated, truncated, _ = collector.step(action)
            done = terminated or truncated
    collector.create_dataset(dataset_id=dataset_id, algorithm_name="random")
    collector.close()


def _assert_trains_and_evaluates(dataset: str, out) -> None:
    """A short `crlkit offline` run on `dataset` finishes with an evaluated success."""
    result = _offline("--dataset", dataset, "--width", "16", *QUICK, "--out", str(out))
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert 0.0 <= summary["eval/success"] <= 1.0


def test_minari_datacollector_dataset_trains_with_no_extra_flags(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    _collector_dataset("pm-collector-v0", "pointmaze-medium-v0")  # ogbench's env
    ds = load_dataset("minari:pm-collector-v0")
    assert ds.goal_indices == (0, 1) and ds.metadata["env"] == "pointmaze-medium"
    _assert_trains_and_evaluates("minari:pm-collector-v0", tmp_path / "run")


def test_collect_minari_relative_out_is_readable_by_minari(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = [
        "collect",
        "--env",
        "pointmaze-medium",
        "--steps",
        "60",
        "--episode-length",
        "30",
        "--num-envs",
        "2",
        "--format",
        "minari",
        "--out",
        "some/dir/rel-v0",
        "--quiet",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("MINARI_DATASETS_PATH", os.fspath(tmp_path / "some" / "dir"))
    assert minari.load_dataset("rel-v0").total_episodes == 2


@pytest.mark.parametrize(
    "name, kind, alpha, p_random",
    [
        ("antmaze-large-explore-v0", "explore", 0.003, 1.0),
        ("antmaze-large-stitch-v0", "stitch", 0.1, 0.5),
        ("cube-double-noisy-v0", "noisy", 0.1, 0.0),
        ("puzzle-3x3-play-v0", "play", 3.0, 0.0),
    ],
)
def test_ogbench_goal_mixture_and_bc_weight_by_data_type(name, kind, alpha, p_random):
    ds = load_dataset(SAMPLE)
    ds = type(ds)(**{**ds.__dict__, "metadata": {"name": name, "env": name.split("-")[0]}})
    assert data_plan.dataset_family(ds)[1] == kind
    cfg, lcfg = offline_config.resolve(
        offline_config.OfflineConfig(dataset=name), offline_config.preset_learner("paper"), ds
    )
    assert lcfg.bc_alpha == alpha and cfg.actor_p_random == p_random


def test_minari_dataset_of_an_env_crlkit_lacks_is_evaluated_in_its_recovered_env(
    tmp_path, monkeypatch
):
    """gymnasium-robotics' PointMaze (installed with crlkit[arm]): no crlkit twin, goal-dict
    observations; crlkit trains on it and evaluates in the env Minari recovers."""
    gymnasium_robotics = pytest.importorskip("gymnasium_robotics")
    gymnasium.register_envs(gymnasium_robotics)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    _collector_dataset("umaze-random-v0", "PointMaze_UMaze-v3", steps=30)
    _assert_trains_and_evaluates("minari:umaze-random-v0", tmp_path / "run")
