"""Dataset layout, OGBench/Minari readers and writers, catalog, offline errors and bad input."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import h5py
import minari
import numpy as np
import ogbench
import pytest
from click.testing import CliRunner
from crlkit.cli.main import cli

from crlkit import files
from crlkit.data import catalog, minari_io, ogbench_io
from crlkit.data.catalog import load_dataset
from crlkit.data.dataset import DatasetError, check_env, from_raw

SAMPLE = "pointmaze-medium-navigate-sample"


def toy(lengths=(5, 3, 7), obs_dim=4, action_dim=2, seed=0, name="toy"):
    """A small dataset with episodes of the given row counts, qpos and desired-goal extras."""
    rng = np.random.default_rng(seed)
    n = sum(lengths)
    obs = rng.normal(size=(n, obs_dim)).astype(np.float32)
    final = np.zeros(n, bool)
    final[np.cumsum(lengths) - 1] = True
    return from_raw(
        obs,
        rng.uniform(-1, 1, size=(n, action_dim)).astype(np.float32),
        final,
        goal_indices=(0, 1),
        source=name,
        extras={
            "qpos": rng.normal(size=(n, 3)).astype(np.float32),
            "desired_goals": rng.normal(size=(n, 2)).astype(np.float32),
        },
        metadata={"name": name, "env": "pointmaze-medium"},
    )


@pytest.fixture
def minari_root(tmp_path, monkeypatch):
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


# ------------------------------------------------------------------------------------ layout


def test_layout_matches_the_docstring_diagram():
    ds = toy(lengths=(5, 4))
    # OGBench compact: terminal on the last valid row and the final row; final row invalid.
    np.testing.assert_array_equal(ds.terminals, [0, 0, 0, 1, 1, 0, 0, 1, 1])
    np.testing.assert_array_equal(ds.valids, [1, 1, 1, 1, 0, 1, 1, 1, 0])
    np.testing.assert_array_equal(ds.episode_starts, [0, 0, 0, 0, 0, 5, 5, 5, 5])
    np.testing.assert_array_equal(ds.episode_ends, [4, 4, 4, 4, 4, 8, 8, 8, 8])
    assert (ds.num_rows, ds.num_transitions, ds.num_episodes) == (9, 7, 2)
    assert [(s.start, s.stop) for s in ds.episodes()] == [(0, 5), (5, 9)]
    np.testing.assert_array_equal(ds.goals(), ds.observations[:, :2])


def test_layout_equals_ogbench_compact_loader(tmp_path):
    ds = toy()
    path = tmp_path / "toy.npz"
    ogbench_io.write_npz(ds, None, path)
    og = ogbench.utils.load_dataset(str(path), compact_dataset=True)
    for key in ("observations", "actions", "terminals", "valids"):
        np.testing.assert_array_equal(og[key], getattr(ds, key), err_msg=key)


# ---------------------------------------------------------------------------------- OGBench IO


def test_ogbench_write_read_roundtrip(tmp_path):
    train, val = toy(), toy(lengths=(4, 6), seed=1)
    paths = ogbench_io.write_npz(train, val, tmp_path / "toy-navigate-v0.npz")
    assert sorted(p.name for p in paths) == ["toy-navigate-v0-val.npz", "toy-navigate-v0.npz"]
    assert sorted(os.listdir(tmp_path)) == ["toy-navigate-v0-val.npz", "toy-navigate-v0.npz"]
    for ds, split in ((train, "train"), (val, "val")):
        back = load_dataset(tmp_path / "toy-navigate-v0.npz", split=split)
        assert back.goal_indices == (0, 1)
        for key in ("observations", "actions", "terminals", "valids", "episode_ends"):
            np.testing.assert_array_equal(getattr(back, key), getattr(ds, key), err_msg=key)
        for key in ("qpos", "desired_goals"):
            np.testing.assert_array_equal(back.extras[key], ds.extras[key])
    # OGBench's own env+dataset entry point reads our pair.
    og_train, og_val = ogbench.make_env_and_datasets(
        "pointmaze-medium-navigate-v0",
        dataset_path=str(tmp_path / "toy-navigate-v0.npz"),
        dataset_only=True,
    )
    assert og_train["observations"].shape == (train.num_transitions, 4)
    assert og_val["observations"].shape == (val.num_transitions, 4)


def test_write_npz_replaces_without_leftovers(tmp_path):
    path = tmp_path / "d.npz"
    ogbench_io.write_npz(toy(), toy(seed=2), path)
    ogbench_io.write_npz(toy(lengths=(3, 3), seed=3), toy(seed=4), path)
    assert sorted(os.listdir(tmp_path)) == ["d-val.npz", "d.npz"]
    assert load_dataset(path).num_rows == 6


# ----------------------------------------------------------------------------------- Minari IO


def test_minari_write_then_minari_loader_then_our_reader(minari_root):
    ds = toy()
    out = minari_io.write_minari(ds, "minari:toy-v0", env_name="pointmaze-medium")
    assert out == minari_root / "toy-v0"
    mds = minari.load_dataset("toy-v0")
    assert (mds.total_episodes, mds.total_steps) == (3, ds.num_transitions)
    meta = mds.storage.metadata
    assert meta["crlkit_env"] == "pointmaze-medium"
    assert meta["crlkit_version"] == __import__("crlkit").__version__
    first = next(mds.iterate_episodes())
    np.testing.assert_array_equal(first.observations["observation"], ds.observations[:5])
    np.testing.assert_array_equal(first.observations["achieved_goal"], ds.observations[:5, :2])
    np.testing.assert_array_equal(first.actions, ds.actions[:4])
    for spec in ("minari:toy-v0", out):
        back = load_dataset(spec)
        _assert_same_transitions(back, ds)
        np.testing.assert_array_equal(back.extras["qpos"], ds.extras["qpos"])
        np.testing.assert_array_equal(back.extras["desired_goals"], ds.extras["desired_goals"])


def _assert_same_transitions(a, b):
    """Equal row for row; actions equal wherever they start a transition."""
    for key in ("observations", "terminals", "valids", "episode_starts", "episode_ends"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)
    valid = b.valids > 0
    np.testing.assert_array_equal(a.actions[valid], b.actions[valid])
    assert a.goal_indices == b.goal_indices


def _foreign_minari(dataset_id, observation, achieved):
    """A goal-conditioned Minari dataset built with minari's own create_dataset_from_buffers."""
    import gymnasium as gym
    from minari.data_collector import EpisodeBuffer

    box = lambda n: gym.spaces.Box(-np.inf, np.inf, (n,), np.float32)  # noqa: E731
    space = gym.spaces.Dict(
        {"observation": box(observation.shape[1]), "achieved_goal": box(2), "desired_goal": box(2)}
    )
    steps = len(observation) - 1
    buf = EpisodeBuffer(
        observations={
            "observation": observation,
            "achieved_goal": achieved,
            "desired_goal": np.zeros_like(achieved),
        },
        actions=np.ones((steps, 2), np.float32),
        rewards=np.zeros(steps),
        terminations=np.zeros(steps, bool),
        truncations=np.eye(steps, dtype=bool)[-1],
    )
    minari.create_dataset_from_buffers(
        dataset_id,
        [buf],
        observation_space=space,
        action_space=box(2),
        algorithm_name="t",
        author="t",
        author_email="t",
        code_permalink="t",
        description="t",
    )


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_minari_dict_observations_flatten_with_goal_slice(minari_root):
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(6, 4)).astype(np.float32)
    # achieved_goal is columns 2:4 of the observation: the goal slice points there.
    _foreign_minari("inside-v0", obs, obs[:, 2:4].copy())
    ds = load_dataset("minari:inside-v0")
    assert ds.goal_indices == (2, 3) and ds.obs_dim == 4
    np.testing.assert_array_equal(ds.observations, obs)
    # achieved_goal not among the columns: appended, and the slice names the new columns.
    other = rng.normal(size=(6, 2)).astype(np.float32)
    _foreign_minari("outside-v0", obs, other)
    ds = load_dataset("minari:outside-v0")
    assert ds.goal_indices == (4, 5)
    np.testing.assert_array_equal(ds.goals(), other)


def test_ogbench_minari_conversion_is_exact(tmp_path, minari_root):
    src = toy(lengths=(6, 2, 9))
    ogbench_io.write_npz(src, None, tmp_path / "a.npz")
    from_og = load_dataset(tmp_path / "a.npz")
    minari_io.write_minari(from_og, tmp_path / "conv-v0", env_name="pointmaze-medium")
    from_minari = load_dataset(tmp_path / "conv-v0")
    _assert_same_transitions(from_minari, src)
    ogbench_io.write_npz(from_minari, None, tmp_path / "b.npz")
    a = ogbench.utils.load_dataset(str(tmp_path / "a.npz"))  # regular: transitions only
    b = ogbench.utils.load_dataset(str(tmp_path / "b.npz"))
    for key in ("observations", "actions", "next_observations", "terminals"):
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


# ----------------------------------------------------------------------------- offline errors


def test_offline_ogbench_name_gives_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    # A closed local port: offline whatever network the test machine has.
    monkeypatch.setattr(ogbench.utils, "DATASET_URL", f"http://127.0.0.1:{_closed_port()}")
    lines = []
    with pytest.raises(DatasetError) as err:
        load_dataset("antmaze-large", data_dir=tmp_path, echo=lines.append)
    msg = str(err.value)
    assert lines == ["antmaze-large -> antmaze-large-navigate-v0"]
    assert "\n" not in msg
    assert f"not found in {tmp_path}" in msg
    files = "antmaze-large-navigate-v0.npz and antmaze-large-navigate-v0-val.npz"
    assert f"fetch {files} by hand from http://127.0.0.1:" in msg
    assert f"put them in {tmp_path}" in msg
    assert "crlkit collect --env antmaze-large" in msg
    assert os.listdir(tmp_path) == []


def test_cut_short_download_leaves_no_partial_file(tmp_path, monkeypatch):
    port = _serve_truncated_once(body=b"PK\x03\x04" + b"x" * 5000, claimed=10**6)
    monkeypatch.setattr(ogbench.utils, "DATASET_URL", f"http://127.0.0.1:{port}")
    with pytest.raises(DatasetError, match="not downloadable"):
        load_dataset("pointmaze-medium-navigate-v0", data_dir=tmp_path)
    assert os.listdir(tmp_path) == []


def test_offline_minari_id(minari_root):
    with pytest.raises(DatasetError) as err:
        load_dataset("minari:D4RL/pointmaze/medium-v2")
    msg = str(err.value)
    assert "\n" not in msg and "not found in" in msg and "MINARI_DATASETS_PATH" in msg
    assert not (minari_root / "D4RL").exists()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _serve_truncated_once(body: bytes, claimed: int) -> int:
    """An HTTP server that answers each request with `body` while claiming `claimed` bytes."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)

    def serve():
        while True:
            conn, _ = srv.accept()
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % claimed + body)
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return srv.getsockname()[1]


# ------------------------------------------------------------------------------------- catalog


def test_short_names_resolve_with_the_resolution_printed():
    cards = catalog.load_catalog()
    assert catalog.find_card("antmaze-large", cards)[0].name == "antmaze-large-navigate-v0"
    assert (
        catalog.find_card("antmaze-large", cards)[1] == "antmaze-large -> antmaze-large-navigate-v0"
    )
    assert catalog.find_card("antmaze-large-stitch", cards)[0].name == "antmaze-large-stitch-v0"
    assert catalog.find_card("humanoidmaze-giant-navigate-v0", cards)[1] is None
    with pytest.raises(DatasetError, match="did you mean 'antmaze-large'"):
        catalog.find_card("antmze-large", cards)


def test_every_card_names_a_registered_env_with_matching_sizes():
    from crlkit.envs import list_envs, make_spec

    cards = catalog.load_catalog()
    names = {
        f"{r}-{m}-navigate-v0"
        for r in ("pointmaze", "antmaze", "humanoidmaze")
        for m in ("medium", "large", "giant")
    }
    assert names | {SAMPLE} <= set(cards)
    for env in {c.env for c in cards.values()}:
        assert env in list_envs()
        spec = make_spec(env)
        for card in (c for c in cards.values() if c.env == env):
            assert (card.obs_dim, card.action_dim) == (spec.state_dim, spec.action_dim), card.name
            assert card.goal_indices == spec.goal_indices
            assert card.transitions == card.episodes * (card.episode_length + 1)
            assert card.collect.startswith(f"crlkit collect --env {env} ")


def test_sample_resolves_without_a_path_and_matches_its_card():
    card = catalog.load_catalog()[SAMPLE]
    ds = load_dataset(SAMPLE)
    assert (ds.num_episodes, ds.num_rows) == (card.episodes, card.transitions)
    assert ds.metadata["env"] == card.env and ds.metadata["collect"] == card.collect
    assert load_dataset(SAMPLE, split="val").num_episodes == card.episodes // 10


def test_crlkit_datasets_lists_catalog_and_presence():
    runner = CliRunner()
    res = runner.invoke(cli, ["datasets"])
    assert res.exit_code == 0, res.output
    sample_line = next(line for line in res.output.splitlines() if line.startswith(SAMPLE))
    assert sample_line.endswith(f"{SAMPLE}.npz")
    res = runner.invoke(cli, ["datasets", "antmaze-large"])
    assert res.exit_code == 0 and "antmaze-large -> antmaze-large-navigate-v0" in res.output
    res = runner.invoke(cli, ["datasets", "nope-maze"])
    assert res.exit_code == 2 and "unknown dataset" in res.output


# ----------------------------------------------------------------------------------- bad input


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _valid_arrays(n=6):
    term = np.zeros(n, bool)
    term[[2, n - 1]] = True
    return dict(
        observations=np.zeros((n, 2), np.float32),
        actions=np.zeros((n, 2), np.float32),
        terminals=term,
    )


BAD = {
    "missing key": (lambda a: a.pop("actions"), "missing key(s) actions"),
    "int observations": (
        lambda a: a.update(observations=np.zeros((6, 2), np.int64)),
        "observations must be a float array",
    ),
    "1-D observations": (
        lambda a: a.update(observations=np.zeros(6, np.float32)),
        "observations must be 2-D",
    ),
    "row mismatch": (
        lambda a: a.update(actions=np.zeros((5, 2), np.float32)),
        "actions has 5 rows",
    ),
    "no terminal": (
        lambda a: a.update(terminals=np.zeros(6, bool)),
        "no complete episode",
    ),
    "ends mid-episode": (
        lambda a: a.update(terminals=np.eye(6, dtype=bool)[2]),
        "ends mid-episode: 3 rows after the last terminal",
    ),
    "nan": (
        lambda a: a["observations"].__setitem__((4, 1), np.nan),
        "observations has a non-finite value at row 4",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_npz_one_line_naming_file_and_problem(tmp_path, case):
    arrays = _valid_arrays()
    edit, problem = BAD[case]
    edit(arrays)
    path = _npz(tmp_path / "bad.npz", **arrays, goal=np.zeros(1))
    with pytest.raises(DatasetError) as err:
        load_dataset(path, goal_indices=[0, 1])
    assert str(err.value).startswith(f"{path}: {problem}")
    assert "\n" not in str(err.value)


def test_corrupt_and_truncated_npz(tmp_path):
    sample = catalog.local_path(catalog.load_catalog()[SAMPLE])
    truncated = tmp_path / "trunc.npz"
    truncated.write_bytes(sample.read_bytes()[: sample.stat().st_size // 2])
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    for path in (truncated, garbage):
        with pytest.raises(DatasetError, match=r"not a readable \.npz") as err:
            load_dataset(path)
        assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)
    with pytest.raises(DatasetError, match="file not found"):
        load_dataset(tmp_path / "absent.npz")


def test_corrupt_hdf5(minari_root):
    out = minari_io.write_minari(toy(), "minari:corrupt-v0", env_name="pointmaze-medium")
    hdf5 = out / "data" / "main_data.hdf5"
    with h5py.File(hdf5, "a") as f:  # a wrong-shape dataset inside a valid file
        del f["episode_1/actions"]
        f["episode_1/actions"] = np.zeros((7, 2), np.float32)
    with pytest.raises(DatasetError, match="actions has 8 rows|expected|rows"):
        load_dataset("minari:corrupt-v0")
    hdf5.write_bytes(hdf5.read_bytes()[:1000])  # truncated file
    with pytest.raises(DatasetError) as err:
        load_dataset("minari:corrupt-v0")
    assert str(err.value).startswith("minari:corrupt-v0: ") and "\n" not in str(err.value)


def test_env_dataset_size_mismatch_names_file_and_sizes():
    from crlkit.envs import make_spec

    ds = load_dataset(SAMPLE)
    check_env(ds, make_spec("pointmaze-large"))  # same robot: fine
    with pytest.raises(DatasetError) as err:
        check_env(ds, make_spec("antmaze-large"))
    assert str(err.value).endswith(
        "observation size 2 does not match env 'antmaze-large' (observation size 29)"
    )
    assert str(err.value).startswith(str(catalog.local_path(catalog.load_catalog()[SAMPLE])))


def test_killed_writer_leaves_no_complete_looking_dataset(tmp_path):
    """SIGKILL while write_npz compresses: no NAME.npz / NAME-val.npz, only hidden temporaries."""
    script = textwrap.dedent(
        f"""
        import numpy as np
        from crlkit.data import ogbench_io
        from crlkit.data.dataset import from_raw
        n = 3_000_000
        term = np.zeros(n, bool); term[999::1000] = True
        obs = np.random.default_rng(0).normal(size=(n, 8)).astype(np.float32)
        ds = from_raw(obs, obs[:, :4], term, goal_indices=(0, 1), source="big")
        ogbench_io.write_npz(ds, ds, {str(tmp_path / "big.npz")!r})
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.time() + 120
        while not any(p.startswith(files.TMP_PREFIX) for p in os.listdir(tmp_path)):
            assert proc.poll() is None and time.time() < deadline, "writer never started writing"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    names = os.listdir(tmp_path)
    assert "big.npz" not in names and "big-val.npz" not in names
    assert all(n.startswith(".") for n in names)
    with pytest.raises(DatasetError, match="file not found"):
        load_dataset(tmp_path / "big.npz")
