"""Checkpoints: one `ckpt-<step>.npz` file (one device) or `ckpt-<step>.orbax/` directory
(orbax-checkpoint: sharded over devices and processes) per save, leaves in flatten order.

A checkpoint holds any pytree of arrays, PRNG keys and scalars (learner state, env state, replay
buffer, counters) plus a JSON header (format, step, leaf paths/shapes/dtypes, the loop's meta).
`load_checkpoint` restores it into a template pytree, checking every leaf; files are written
through `crlkit.files.atomic_open` (orbax: a temporary directory renamed when complete), so a
killed save never leaves anything under a checkpoint name. Both formats are read by every reader.
"""

from __future__ import annotations

import json
import os
import re
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

from crlkit import files
from crlkit.runs import orbax_ckpt

Pytree = Any

CHECKPOINT_RE = re.compile(r"^ckpt-(\d{12})\.(?:npz|orbax)$")
CHECKPOINT_FORMATS = ("npz", "orbax")
CHECKPOINT_FORMAT = 1
_META_KEY = "__meta__"


class RunDirError(ValueError):
    """A run directory or checkpoint problem the user can fix; the message is one line."""


class CorruptCheckpoint(RunDirError):
    """A checkpoint file that cannot be read (truncated or damaged on disk)."""


def leaf_key(i: int) -> str:
    """Name of the i-th leaf's array inside a checkpoint file."""
    return f"leaf_{i:05d}"


def checkpoint_leaves(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Leaf path (jax keystr) -> array of a checkpoint file, without a template."""
    header, arrays = read_checkpoint_file(path)
    return {leaf["path"]: arrays[leaf_key(i)] for i, leaf in enumerate(header["leaves"])}




def save_checkpoint(
    directory: str | os.PathLike,
    tree: Pytree,
    step: int,
    meta: Mapping | None = None,
    fmt: str = "npz",
) -> Path:
    """Write `tree` (any pytree of arrays, PRNG keys and scalars) as ckpt-<step>.<fmt>, atomically.

    Args:
      directory: the checkpoints folder (created if missing).
      tree: params, optimizer states, RNG keys, counters, env state, replay buffer, ...
      step: the loop's progress counter; names the file and orders checkpoints.
      meta: optional JSON-able extras stored alongside (returned by `load_checkpoint`).
      fmt: "npz" (one file, one process) or "orbax" (sharded global arrays; every process calls).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    arrays, leaves_meta = {}, []
    to_stored = _leaf_to_numpy if fmt == "npz" else _leaf_to_global
    for i, (path, leaf) in enumerate(flat):
        arr, info = to_stored(leaf)
        arrays[leaf_key(i)] = arr
        leaves_meta.append({"path": jax.tree_util.keystr(path), **info})
    header = {
        "format": CHECKPOINT_FORMAT,
        "step": int(step),
        "saved_at": time.time(),
        "leaves": leaves_meta,
        "meta": files.to_jsonable(dict(meta or {})),
    }
    if fmt == "orbax":
        target = directory / f"ckpt-{int(step):012d}{orbax_ckpt.ORBAX_SUFFIX}"
        stored = {k: v for k, v in arrays.items() if np.prod(v.shape) > 0}  # orbax refuses empty
        orbax_ckpt.save_orbax(target, stored, files.to_jsonable(header))
        return target
    arrays[_META_KEY] = np.array(json.dumps(header))
    target = directory / f"ckpt-{int(step):012d}.npz"
    with files.atomic_open(target) as f:
        np.savez(f, **arrays)
    return target


def load_checkpoint(path: str | os.PathLike, template: Pytree) -> tuple[Pytree, int, dict]:
    """Read a checkpoint into the structure of `template` -> (tree, step, meta).

    `template` is a pytree like the saved one (arrays, `jax.ShapeDtypeStruct`s from
    `jax.eval_shape`, or scalars); each leaf must match in path, shape and dtype. Leaves come
    back as jax arrays on the template leaf's sharding (numpy arrays / Python scalars where the
    template has those).
    """
    orbax = Path(path).is_dir()
    header, arrays = _read_header(path) if orbax else read_checkpoint_file(path)
    flat, treedef = jax.tree_util.tree_flatten_with_path(template)
    stored = header["leaves"]
    if len(stored) != len(flat):
        raise RunDirError(
            f"checkpoint {path} holds {len(stored)} arrays but the run expects {len(flat)};"
            f" it was saved by a different model or settings"
        )
    leaves = []
    for i, ((key_path, like), info) in enumerate(zip(flat, stored, strict=True)):
        name = jax.tree_util.keystr(key_path)
        if info["path"] != name:
            raise RunDirError(
                f"checkpoint {path} leaf {i} is {info['path']} but the run expects {name}"
            )
        if orbax:
            _check_leaf(info, like, name, path)
        else:
            leaves.append(_leaf_from_numpy(arrays[leaf_key(i)], info, like, name, path))
    if orbax:
        leaves = _restore_orbax_leaves(path, flat, stored)
    return jax.tree_util.tree_unflatten(treedef, leaves), int(header["step"]), header["meta"]


def _read_header(path: str | os.PathLike) -> tuple[dict, dict]:
    try:
        return orbax_ckpt.read_orbax_header(Path(path)), {}
    except Exception as err:  # orbax/tensorstore raise many kinds for a damaged directory
        raise CorruptCheckpoint(f"checkpoint {path} is unreadable ({type(err).__name__})") from None


def _restore_orbax_leaves(path: Any, flat: list, stored: list[dict]) -> list:
    """Leaves of an orbax checkpoint, on the template leaves' shardings (orbax reshards)."""
    abstract, typed = {}, {}
    for i, ((_, like), info) in enumerate(zip(flat, stored, strict=True)):
        if "prng_impl" in info:  # stored as key data; wrapped again below
            typed[i] = info["prng_impl"]
            like = jax.eval_shape(jax.random.key_data, like)
            like = jax.ShapeDtypeStruct(like.shape, like.dtype, sharding=_sharding(flat[i][1]))
        if np.prod(like.shape) > 0:
            abstract[leaf_key(i)] = orbax_ckpt.abstract_leaf(like)
    try:
        restored = orbax_ckpt.restore_orbax(Path(path), abstract)
    except Exception as err:  # see _read_header
        raise CorruptCheckpoint(f"checkpoint {path} is unreadable ({type(err).__name__})") from None
    leaves = []
    for i, (_, like) in enumerate(flat):
        value = restored.get(leaf_key(i))
        if value is None:  # an empty leaf (not stored)
            value = _put(np.zeros(like.shape, like.dtype), _sharding(like))
        if i in typed:
            value = jax.random.wrap_key_data(value, impl=typed[i])
        elif not isinstance(like, (jax.Array, jax.ShapeDtypeStruct)):
            value = _host_value(np.asarray(value), like)
        leaves.append(value)
    return leaves


def list_checkpoints(directory: str | os.PathLike) -> list[tuple[int, Path]]:
    """(step, path) of the complete checkpoints in `directory`, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    matches = ((CHECKPOINT_RE.match(p.name), p) for p in directory.iterdir())
    found = [(int(m.group(1)), p) for m, p in matches if m]
    return sorted(found)


def _leaf_to_numpy(leaf: Any) -> tuple[np.ndarray, dict]:
    """Host copy of one leaf plus what restoring it needs (PRNG impl, exotic dtype)."""
    leaf, info = _leaf_to_global(leaf)
    arr = np.asarray(leaf)
    if not arr.dtype.isbuiltin:  # e.g. bfloat16: npz would store raw void bytes, keep them as uint
        arr = arr.view(f"u{arr.dtype.itemsize}")
    return arr, info


def _leaf_to_global(leaf: Any) -> tuple[Any, dict]:
    """One leaf as orbax stores it (jax arrays stay sharded) plus the header's leaf info."""
    info: dict[str, Any] = {}
    dtype = getattr(leaf, "dtype", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        info["prng_impl"] = str(jax.random.key_impl(leaf))
        info["shape"] = list(leaf.shape)
        leaf = jax.random.key_data(leaf)
    if not isinstance(leaf, jax.Array):
        leaf = np.asarray(leaf)
    info.setdefault("shape", list(leaf.shape))
    info["dtype"] = str(np.dtype(leaf.dtype))
    return leaf, info


def _check_leaf(info: dict, like: Any, name: str, path: Any) -> None:
    """One-line RunDirError unless the stored leaf fits the template leaf in shape and dtype."""
    like_dtype = getattr(like, "dtype", None)
    like_shape = tuple(getattr(like, "shape", np.shape(like)))
    if tuple(info["shape"]) != like_shape:
        raise RunDirError(
            f"checkpoint {path} leaf {name} has shape {tuple(info['shape'])};"
            f" the run expects {like_shape} (saved with other sizes, e.g. --num-envs)"
        )
    if like_dtype is not None and jax.dtypes.issubdtype(like_dtype, jax.dtypes.prng_key):
        if "prng_impl" not in info:
            raise RunDirError(f"checkpoint {path} leaf {name} is not a PRNG key")
        return
    if like_dtype is not None and str(np.dtype(like_dtype)) != info["dtype"]:
        raise RunDirError(
            f"checkpoint {path} leaf {name} has dtype {info['dtype']};"
            f" the run expects {np.dtype(like_dtype)}"
        )


def _leaf_from_numpy(arr: np.ndarray, info: dict, like: Any, name: str, path: Any) -> Any:
    """Rebuild one leaf shaped and typed like the template leaf `like`."""
    _check_leaf(info, like, name, path)
    like_dtype = getattr(like, "dtype", None)
    if like_dtype is not None and jax.dtypes.issubdtype(like_dtype, jax.dtypes.prng_key):
        value = jax.random.wrap_key_data(arr, impl=info["prng_impl"])
        return jax.device_put(value, _sharding(like))
    if str(arr.dtype) != info["dtype"]:
        arr = arr.view(np.dtype(like_dtype))
    if isinstance(like, (jax.Array, jax.ShapeDtypeStruct)):
        return _put(arr, _sharding(like))
    return _host_value(arr, like)


def _host_value(arr: np.ndarray, like: Any) -> Any:
    if isinstance(like, np.ndarray):
        return arr
    return type(like)(arr.item()) if isinstance(like, (bool, int, float)) else arr


def _put(arr: np.ndarray, sharding: Any) -> jax.Array:
    """A host array on `sharding`, also one spanning other processes (an npz read by all)."""
    if sharding is None or sharding.is_fully_addressable:
        return jax.device_put(arr, sharding)
    return jax.make_array_from_callback(arr.shape, sharding, lambda idx: arr[idx])


def _sharding(like: Any) -> Any:
    """Where a template leaf lives (None: the default device)."""
    return getattr(like, "sharding", None)


def read_checkpoint_file(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """Header and arrays of a checkpoint file; raises `CorruptCheckpoint` if it cannot be read."""
    if Path(path).is_dir():
        header, _ = _read_header(path)
        try:
            arrays = orbax_ckpt.restore_orbax(Path(path), None)
            for i, info in enumerate(header["leaves"]):  # empty leaves are not stored
                arrays.setdefault(leaf_key(i), np.zeros(info["shape"], info["dtype"]))
            return header, arrays
        except Exception as err:  # see _read_header
            problem = type(err).__name__
            raise CorruptCheckpoint(f"checkpoint {path} is unreadable ({problem})") from None
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        header = json.loads(str(arrays.pop(_META_KEY)))
        if header.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"unknown checkpoint format {header.get('format')!r}")
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile) as err:
        problem = f"{type(err).__name__}: {err}"
        raise CorruptCheckpoint(f"checkpoint {path} is unreadable ({problem})") from None
    return header, arrays
