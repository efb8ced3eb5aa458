"""Minari (HDF5) datasets: read by id or path with minari's own loader, and write.

Minari stores each episode as `observations` (T+1 rows) and `actions`, `rewards`, `terminations`,
`truncations` (T rows). An episode maps onto T+1 rows of the compact layout; the final row gets a
zero action (it belongs to no transition). Goal-conditioned dict observations (`observation`,
`achieved_goal`, `desired_goal`) are flattened: the layout's observation is `observation`, and the
goal slice is the columns of it that equal `achieved_goal` (or `achieved_goal` appended when no
columns do); `desired_goal` becomes the `desired_goals` extra.

crlkit writes `observation` = the env state (OGBench's observation), `achieved_goal` = its goal
slice, `desired_goal` = the commanded goal, `infos/qpos`, `infos/qvel` when known, and metadata keys
`crlkit_version`, `crlkit_env`, `goal_indices` and `desired_goal` (`commanded` or `episode_final`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from crlkit.data.dataset import Dataset, DatasetError, from_raw
from crlkit.data.env_link import crlkit_env, env_goal_indices

PREFIX = "minari:"
GC_KEYS = ("observation", "achieved_goal", "desired_goal")


def minari_root() -> Path:
    """Minari's local root: $MINARI_DATASETS_PATH, else ~/.minari/datasets."""
    root = os.environ.get("MINARI_DATASETS_PATH")
    return Path(root) if root else Path.home() / ".minari" / "datasets"


def read_minari(
    spec: str | os.PathLike,
    *,
    goal_indices: Sequence[int] | None = None,
    rebuild_hint: str | None = None,
    env: str | None = None,
) -> Dataset:
    """Reads a Minari dataset by id (`minari:<id>` or a bare id) or by path into the layout.

    A path may be the dataset directory (holding `data/`) or its `data/` directory. The goal slice
    is `goal_indices`, else the one crlkit recorded, else where `achieved_goal` sits in the
    observation, else the goal contract of the env (`env`, or the env the dataset's env_spec names
    when crlkit has it: ogbench ids map to crlkit envs).

    Raises:
      DatasetError: not found locally and not downloadable, unreadable HDF5, unsupported spaces.
    """
    spec = str(spec)
    if Path(spec).exists():
        data_dir = _data_dir(Path(spec))
        source = data_dir.parent
        mds = _open(data_dir, source)
    else:
        dataset_id = spec[len(PREFIX) :] if spec.startswith(PREFIX) else spec
        source = f"{PREFIX}{dataset_id}"
        mds = _open(_local_or_download(dataset_id, rebuild_hint), source)
    return _to_layout(mds, source, goal_indices, env)


def write_minari(
    ds: Dataset,
    out: str | os.PathLike,
    *,
    env_name: str,
    ogbench_env_id: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Writes `ds` as a Minari dataset directory; returns it. Loadable by `minari.load_dataset`.

    `out` is `minari:<id>` (into Minari's root) or a directory path whose last component is the
    dataset id (`/some/root/name-v0`: set MINARI_DATASETS_PATH=/some/root to load it by id). The
    dataset is built in a hidden temporary directory beside `out` and renamed into place.
    """
    out, dataset_id = resolve_out(out)
    if out.exists() and not overwrite:
        raise ValueError(f"{out} already exists; pass overwrite=True (--overwrite) to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial"))
    try:
        _write_storage(ds, temp / "data", dataset_id, env_name, ogbench_env_id)
        _swap_into_place(temp, out)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return out


# ------------------------------------------------------------------------------------- reading


def local_data_dir(spec: str | os.PathLike) -> Path:
    """The local `data/` dir of a Minari dataset given by path, `minari:<id>` or bare id."""
    spec = str(spec)
    if Path(spec).exists():
        return _data_dir(Path(spec))
    return minari_root() / spec.removeprefix(PREFIX) / "data"


def _data_dir(path: Path) -> Path:
    """The `data/` directory (holding metadata.json) of a Minari dataset path."""
    if path.is_file() and path.suffix in (".hdf5", ".h5", ".json"):
        path = path.parent
    if (path / "metadata.json").is_file():
        return path
    if (path / "data" / "metadata.json").is_file():
        return path / "data"
    raise DatasetError(path, "not a Minari dataset (no data/metadata.json)")


def _local_or_download(dataset_id: str, rebuild_hint: str | None) -> Path:
    """Local `data/` dir of a dataset id, trying minari's download when it is not local."""
    import minari

    local = minari_root() / dataset_id
    if (local / "data" / "metadata.json").is_file():
        return local / "data"
    existed = local.exists()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            minari.load_dataset(dataset_id, download=True)
    except Exception as err:  # any network/import failure means "not downloadable here"
        if not existed:
            shutil.rmtree(local, ignore_errors=True)
        msg = (
            f"not found in {local} and not downloadable ({type(err).__name__}: {err}); "
            f"put the Minari dataset directory at {local} (or set MINARI_DATASETS_PATH)"
        )
        if rebuild_hint:
            msg += f", or build a local equivalent with: {rebuild_hint}"
        raise DatasetError(f"{PREFIX}{dataset_id}", msg) from None
    return local / "data"


def _open(data_dir: Path, source: Any):
    """A MinariDataset over `data_dir`, with one-line errors for broken files."""
    from minari import MinariDataset

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return MinariDataset(data_dir)
    except Exception as err:  # h5py/json/space errors from deep inside minari
        problem = f"not a readable Minari dataset ({type(err).__name__}: {err})"
        raise DatasetError(source, problem) from None


def _to_layout(mds, source: Any, goal_indices: Sequence[int] | None, env: str | None) -> Dataset:
    """Flattens every episode of a MinariDataset into the compact layout."""
    meta = mds.storage.metadata
    stored_goal = goal_indices or meta.get("goal_indices")
    env_id = env or _recorded_env_id(mds)
    env_name = crlkit_env(env_id) if env_id else None
    columns: dict[str, list[np.ndarray]] = {}
    try:
        for ep in mds.iterate_episodes():
            for key, value in _episode_rows(ep, source).items():
                columns.setdefault(key, []).append(value)
    except DatasetError:
        raise
    except Exception as err:  # truncated/corrupt HDF5 surfaces here, mid-iteration
        problem = f"unreadable episode data ({type(err).__name__}: {err})"
        raise DatasetError(source, problem) from None
    if not columns:
        raise DatasetError(source, "no complete episode (the dataset holds no episodes)")
    arrays = {k: np.concatenate(v) for k, v in columns.items()}
    if not stored_goal and "achieved_goal" not in arrays:
        stored_goal = _env_goal(env_id, env_name, source)
    obs, goal = _flatten_obs(arrays, stored_goal, source)
    if meta.get("desired_goal") == "episode_final":
        arrays.pop("desired_goal", None)  # filled in by the writer, not commanded
    extras = {k: arrays[k] for k in ("qpos", "qvel") if k in arrays}
    if "desired_goal" in arrays:
        extras["desired_goals"] = arrays["desired_goal"]
    stored = json.loads(meta.get("crlkit_metadata", "{}"))
    metadata = {**stored, "name": mds.spec.dataset_id, "path": str(source), "format": "minari"}
    if env_name and "env" not in metadata:
        metadata["env"] = env_name
    return from_raw(
        obs,
        arrays["actions"],
        arrays["terminals"],
        goal_indices=goal,
        source=source,
        extras=extras,
        metadata=metadata,
    )


def _recorded_env_id(mds) -> str | None:
    """The env id of the dataset's recorded env_spec (e.g. ogbench's pointmaze-medium-v0)."""
    spec = getattr(mds.spec, "env_spec", None)
    return getattr(spec, "id", None) or None


def _env_goal(env_id: str | None, env_name: str | None, source: Any) -> tuple[int, ...]:
    """The goal slice from the dataset's env, or a one-line DatasetError saying what to pass."""
    if env_name is not None:
        return env_goal_indices(env_name)
    if env_id is None:
        raise DatasetError(
            source, "records no goal slice, no achieved_goal and no env; pass --goal-indices"
        )
    raise DatasetError(
        source,
        f"records no goal slice and its env {env_id!r} is not a crlkit env (see: crlkit envs); "
        f"pass --env NAME or --goal-indices",
    )


def _episode_rows(ep, source: Any) -> dict[str, np.ndarray]:
    """T+1 layout rows for one Minari episode (observations split by dict key)."""
    obs = ep.observations
    parts = dict(obs) if isinstance(obs, dict) else {"observation": obs}
    unknown = set(parts) - set(GC_KEYS)
    if unknown:
        raise DatasetError(source, f"observation keys {sorted(parts)} are not {list(GC_KEYS)}")
    actions = np.asarray(ep.actions)
    steps = actions.shape[0]
    if actions.ndim != 2:
        raise DatasetError(source, f"actions must be a Box ([T, dim]), got shape {actions.shape}")
    rows = {k: np.asarray(v) for k, v in parts.items()}
    for key, value in rows.items():
        if value.shape[0] != steps + 1:
            raise DatasetError(
                source, f"episode {ep.id}: {key} has {value.shape[0]} rows, expected {steps + 1}"
            )
    rows["actions"] = np.concatenate([actions, np.zeros((1, actions.shape[1]), actions.dtype)])
    rows["terminals"] = np.arange(steps + 1) == steps
    for key in ("qpos", "qvel"):
        if ep.infos and key in ep.infos and len(ep.infos[key]) == steps + 1:
            rows[key] = np.asarray(ep.infos[key])
    return rows


def _flatten_obs(
    arrays: dict[str, np.ndarray], goal_indices: Sequence[int] | None, source: Any
) -> tuple[np.ndarray, Sequence[int]]:
    """The layout's observations and goal slice from a (possibly dict) Minari observation."""
    obs = np.asarray(arrays["observation"], np.float32)
    if obs.ndim == 1:
        obs = obs[:, None]
    achieved = arrays.get("achieved_goal")
    if goal_indices:
        return obs, goal_indices
    if achieved is None:
        raise DatasetError(
            source, "records no goal slice and has no achieved_goal; pass goal_indices"
        )
    achieved = np.asarray(achieved, np.float32).reshape(len(obs), -1)
    g = achieved.shape[1]
    for start in range(obs.shape[1] - g + 1):
        if np.array_equal(obs[:, start : start + g], achieved):
            return obs, list(range(start, start + g))
    width = obs.shape[1]
    return np.concatenate([obs, achieved], axis=1), list(range(width, width + g))


# ------------------------------------------------------------------------------------- writing


def resolve_out(out: str | os.PathLike) -> tuple[Path, str]:
    """(dataset directory, dataset id) for a `minari:<id>` or a directory path."""
    from minari.dataset.minari_dataset import parse_dataset_id

    out = str(out)
    if out.startswith(PREFIX):
        dataset_id = out[len(PREFIX) :]
        path = minari_root() / dataset_id
    else:
        path = Path(out).expanduser().absolute()  # minari resolves relative paths on its own
        dataset_id = path.name
    try:
        parse_dataset_id(dataset_id)
    except ValueError:
        raise ValueError(
            f"Minari dataset id {dataset_id!r} must look like name-v0 (or namespace/name-v0)"
        ) from None
    return path, dataset_id


def _write_storage(
    ds: Dataset, data_dir: Path, dataset_id: str, env_name: str, ogbench_env_id: str | None
) -> None:
    """Writes metadata.json and main_data.hdf5 for `ds` into `data_dir` with minari's storage."""
    import gymnasium as gym
    import minari
    from minari.dataset.minari_storage import MinariStorage

    import crlkit

    g = ds.goal_dim
    box = lambda n, lo=-np.inf, hi=np.inf: gym.spaces.Box(lo, hi, (n,), np.float32)  # noqa: E731
    obs_space = gym.spaces.Dict(
        {"observation": box(ds.obs_dim), "achieved_goal": box(g), "desired_goal": box(g)}
    )
    act_space = box(ds.action_dim, -1.0, 1.0)
    storage = MinariStorage.new(
        data_dir, observation_space=obs_space, action_space=act_space, jpeg_encoding=False
    )
    commanded = "desired_goals" in ds.extras
    own_meta = {k: v for k, v in ds.metadata.items() if k not in ("path", "format")}
    metadata: dict[str, Any] = {
        "dataset_id": dataset_id,
        "minari_version": minari.__version__,
        "algorithm_name": str(ds.metadata.get("policy", "crlkit collect")),
        "author": {"crlkit"},
        "description": f"crlkit dataset for env {env_name} ({ds.num_episodes} episodes)",
        "crlkit_version": crlkit.__version__,
        "crlkit_env": env_name,
        "goal_indices": list(ds.goal_indices),
        "desired_goal": "commanded" if commanded else "episode_final",
        "crlkit_metadata": json.dumps(own_meta, sort_keys=True, default=str),
    }
    eval_spec = _ogbench_spec_json(ogbench_env_id)
    if eval_spec:
        metadata["eval_env_spec"] = eval_spec
    storage.update_metadata(metadata)
    storage.update_episodes(_episode_buffers(ds))


def _episode_buffers(ds: Dataset):
    """One minari EpisodeBuffer per episode of `ds` (generator, so memory stays flat)."""
    from minari.data_collector import EpisodeBuffer

    goals = ds.goals()
    desired = ds.extras.get("desired_goals")
    for i, rows in enumerate(ds.episodes()):
        steps = rows.stop - rows.start - 1
        want = desired[rows] if desired is not None else np.repeat(goals[rows][-1:], steps + 1, 0)
        infos = {k: np.asarray(ds.extras[k][rows]) for k in ("qpos", "qvel") if k in ds.extras}
        truncations = np.zeros(steps, bool)
        truncations[-1] = True
        yield EpisodeBuffer(
            id=i,
            observations={
                "observation": ds.observations[rows],
                "achieved_goal": goals[rows],
                "desired_goal": np.asarray(want, np.float32),
            },
            actions=ds.actions[rows][:-1],
            rewards=np.zeros(steps, np.float32),
            terminations=np.zeros(steps, bool),
            truncations=truncations,
            infos=infos or None,
        )


def _ogbench_spec_json(env_id: str | None) -> str | None:
    """Gymnasium spec JSON of OGBench's env (so `recover_environment(eval_env=True)` works)."""
    if not env_id:
        return None
    try:
        import gymnasium as gym
        import ogbench  # noqa: F401  (registers OGBench's env ids)

        return gym.spec(env_id).to_json()
    except Exception:  # an unregistered id only costs the convenience
        return None


def _swap_into_place(temp: Path, out: Path) -> None:
    """Renames the finished `temp` dataset to `out`, moving an older `out` aside first."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.rename(out, old)
    os.rename(temp, out)
    if old is not None:
        with contextlib.suppress(OSError):
            shutil.rmtree(old)
