"""OGBench `.npz` datasets: read (by path, or by name through ogbench's downloader) and write.

On disk OGBench keeps two compressed files per dataset, `NAME.npz` and `NAME-val.npz`, with keys
`observations`, `actions`, `terminals` (True on each episode's final row) and optional `qpos`,
`qvel`. crlkit writes the same keys, so `ogbench.utils.load_dataset` and
`ogbench.make_env_and_datasets(..., dataset_path=...)` read our files, plus two keys OGBench
ignores: `desired_goals` (the goal the collector was commanded toward) and `crlkit_metadata` (a
JSON string with the goal slice, the env and how the data was made).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from crlkit import files
from crlkit.data.dataset import REQUIRED_KEYS, Dataset, DatasetError, from_raw, to_raw

DEFAULT_DATA_DIR = "~/.ogbench/data"
METADATA_KEY = "crlkit_metadata"
# Per-row arrays we carry besides the required keys (OGBench's loader ignores the ones it lacks).
EXTRA_KEYS = ("qpos", "qvel", "desired_goals")
# What a broken .npz raises somewhere inside numpy/zipfile/zlib.
_READ_ERRORS = (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, zlib.error)


def val_path(path: str | os.PathLike) -> Path:
    """`NAME-val.npz` beside `NAME.npz` (OGBench's naming)."""
    path = Path(path)
    return path.with_name(path.name[: -len(".npz")] + "-val.npz")


def read_npz(
    path: str | os.PathLike,
    *,
    goal_indices: Sequence[int] | None = None,
    default_goal_indices: Sequence[int] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Dataset:
    """Reads one OGBench `.npz` into the compact layout.

    The goal slice comes from `goal_indices`, else the file's own `crlkit_metadata`, else
    `default_goal_indices` (a catalog card's), else it is an error.

    Raises:
      DatasetError: missing or unreadable file, missing keys, bad dtypes/shapes, no episode.
    """
    path = Path(path)
    arrays, stored_meta = _read_arrays(path)
    goal = goal_indices or stored_meta.get("goal_indices") or default_goal_indices
    if not goal:
        raise DatasetError(path, "records no goal slice; pass goal_indices (e.g. [0, 1] for xy)")
    stored_meta.pop("goal_indices", None)
    meta = {**stored_meta, **(metadata or {}), "path": str(path), "format": "ogbench"}
    meta.setdefault("name", path.name[: -len(".npz")])
    return from_raw(
        arrays["observations"],
        arrays["actions"],
        arrays["terminals"],
        goal_indices=goal,
        source=path,
        extras={k: arrays[k] for k in EXTRA_KEYS if k in arrays},
        metadata=meta,
    )


def write_npz(train: Dataset, val: Dataset | None, path: str | os.PathLike) -> list[Path]:
    """Writes `NAME.npz` (+ `NAME-val.npz`) atomically; returns the paths written.

    Both files are written to temporaries in the target directory first; then an older `NAME.npz`
    is removed, the val file renamed into place, and the train file last, so a crash never leaves
    a `NAME.npz` beside a stale or missing val file that looks like a finished dataset.
    """
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"OGBench output must end in .npz, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    jobs = [(val_path(path), val)] if val is not None else []
    jobs.append((path, train))
    temps = []
    try:
        for target, ds in jobs:
            temps.append((_write_temp(target, ds), target))
        # An older NAME.npz goes first, so no moment shows it beside the new val file.
        path.unlink(missing_ok=True)
        for temp, target in temps:
            os.replace(temp, target)
    finally:
        for temp, _ in temps:
            with contextlib.suppress(FileNotFoundError):
                os.remove(temp)
    return [target for target, _ in jobs]


def fetch(name: str, data_dir: str | os.PathLike | None, rebuild_hint: str | None) -> Path:
    """Path of `NAME.npz` in the OGBench cache, downloading it with ogbench when missing.

    Raises:
      DatasetError: one line saying where it looked, where to put the files and how to build a
        local equivalent (`rebuild_hint`), when the files are absent and cannot be downloaded. A
        failed download leaves no partial file behind.
    """
    data_dir = Path(data_dir or DEFAULT_DATA_DIR).expanduser()
    train = data_dir / f"{name}.npz"
    if train.exists() and val_path(train).exists():
        return train
    try:
        _download(name, data_dir)
    except Exception as err:  # any network/IO failure means "not downloadable here"
        raise DatasetError(name, _offline_message(name, data_dir, err, rebuild_hint)) from None
    return train


def _read_arrays(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and stored crlkit metadata of an .npz, with one-line errors for broken files."""
    if not path.is_file():
        raise DatasetError(path, "file not found")
    if not zipfile.is_zipfile(path):  # np.load would call it pickled data
        problem = "not a readable .npz: not an .npz file at all (that is a zip of NumPy arrays)"
        raise DatasetError(path, problem)
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in REQUIRED_KEYS if k not in npz.files]
            if missing:
                raise DatasetError(path, f"missing key(s) {', '.join(missing)}; has {npz.files}")
            keys = [*REQUIRED_KEYS, *(k for k in EXTRA_KEYS if k in npz.files)]
            arrays = {k: npz[k] for k in keys}
            meta_raw = str(npz[METADATA_KEY]) if METADATA_KEY in npz.files else "{}"
    except DatasetError:
        raise
    except _READ_ERRORS as err:
        raise DatasetError(path, f"not a readable .npz ({type(err).__name__}: {err})") from None
    try:
        meta = json.loads(meta_raw)
    except json.JSONDecodeError:
        raise DatasetError(path, f"{METADATA_KEY} is not valid JSON") from None
    return arrays, meta


def _write_temp(target: Path, ds: Dataset) -> Path:
    """Writes `ds` compressed to a hidden temporary beside `target`; returns its path."""
    arrays = to_raw(ds)
    arrays = {
        k: (v.astype(np.float32) if k != "terminals" and v.dtype == np.float64 else v)
        for k, v in arrays.items()
    }
    meta = {k: v for k, v in ds.metadata.items() if k not in ("path", "format")}
    meta["goal_indices"] = list(ds.goal_indices)
    arrays[METADATA_KEY] = np.array(json.dumps(meta, sort_keys=True, default=str))
    with files.temp_beside(target) as (temp, f):
        np.savez_compressed(f, **arrays)
    return temp


def _download(name: str, data_dir: Path) -> None:
    """Downloads NAME(.npz, -val.npz) with ogbench; removes whatever a failed try left behind.

    ogbench renames its `.tmp` file into place once the HTTP stream ends, even when the stream was
    cut short, so each new file is opened and checked before it is trusted.
    """
    from ogbench.utils import download_datasets

    targets = [data_dir / f"{name}.npz", data_dir / f"{name}-val.npz"]
    existed = {t: t.exists() for t in targets}
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # ogbench prints each URL
            download_datasets([name], str(data_dir))
        for target in targets:
            if not existed[target]:
                _read_arrays(target)
    except BaseException:
        for target in targets:
            with contextlib.suppress(FileNotFoundError):
                os.remove(f"{target}.tmp")
            if not existed[target]:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(target)
        raise


def _offline_message(name: str, data_dir: Path, err: Exception, rebuild_hint: str | None) -> str:
    """The one-line 'not here, not downloadable' message."""
    reason = getattr(err, "reason", None) or getattr(err, "problem", None) or err
    from ogbench.utils import DATASET_URL  # where ogbench's own download fetches from

    msg = (
        f"not found in {data_dir} and not downloadable ({type(err).__name__}: {reason}); "
        f"fetch {name}.npz and {name}-val.npz by hand from {DATASET_URL}/ and put them in "
        f"{data_dir} (or pass --data-dir DIR)"
    )
    if rebuild_hint:
        msg += f", or build a local equivalent with: {rebuild_hint}"
    return msg
