"""Checkpoints through orbax-checkpoint: sharded, multi-host arrays in `ckpt-<step>.orbax/`.

The layout mirrors the npz format (`runs/checkpoint.py`): the tree's leaves are stored as a flat
`{leaf_00000: array, ...}` dict in flatten order, next to the same JSON header (format, step, leaf
paths/shapes/dtypes, the loop's meta). So one reader checks paths and shapes for both formats, a
checkpoint restores into whatever device layout the template's shardings name (orbax reshards),
and readers that only want leaves by path (`checkpoint_leaves`) need no template.

Orbax writes into a temporary directory and renames it when every process has finished, so a
killed save never leaves a directory under a checkpoint name (the temporary one is removed when
the run dir is reopened).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import jax
import numpy as np

ORBAX_SUFFIX = ".orbax"
_TMP_MARK = ".orbax-checkpoint-tmp"


def _checkpointer():
    import orbax.checkpoint as ocp

    return ocp.Checkpointer(ocp.CompositeCheckpointHandler())


def save_orbax(target: Path, leaves: dict[str, Any], header: dict) -> None:
    """Write the flat leaves (global jax arrays or NumPy) and the header to `target`; every
    process calls it (orbax writes each process's shards and syncs them)."""
    import orbax.checkpoint as ocp

    args = ocp.args.Composite(state=ocp.args.StandardSave(leaves), header=ocp.args.JsonSave(header))
    _checkpointer().save(target.absolute(), args=args, force=True)


def read_orbax_header(path: Path) -> dict:
    """The JSON header of an orbax checkpoint directory."""
    import orbax.checkpoint as ocp

    restored = _checkpointer().restore(
        path.absolute(), args=ocp.args.Composite(header=ocp.args.JsonRestore())
    )
    return dict(restored["header"])


def restore_orbax(path: Path, abstract: dict[str, Any] | None) -> dict[str, Any]:
    """The flat leaves: on the shardings of `abstract` (ShapeDtypeStructs), or as NumPy (None)."""
    import orbax.checkpoint as ocp

    if abstract is None:
        args = ocp.args.Composite(state=ocp.args.StandardRestore())
        restored = _checkpointer().restore(path.absolute(), args=args)
        return {k: np.asarray(v) for k, v in restored["state"].items()}
    args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
    return dict(_checkpointer().restore(path.absolute(), args=args)["state"])


def remove_orbax_temps(directory: Path) -> None:
    """Delete orbax temporary directories left by a save that was killed."""
    for p in directory.glob(f"*{_TMP_MARK}*"):
        shutil.rmtree(p, ignore_errors=True)


def remove_checkpoint(path: Path) -> None:
    """Delete a checkpoint of either format (a file or an orbax directory)."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


def abstract_leaf(like: Any) -> jax.ShapeDtypeStruct:
    """What orbax restores a template leaf as: its shape, dtype and sharding (default device)."""
    sharding = getattr(like, "sharding", None) or jax.sharding.SingleDeviceSharding(
        jax.local_devices()[0]
    )
    return jax.ShapeDtypeStruct(like.shape, like.dtype, sharding=sharding)
