"""Checkpoints: orbax-checkpoint's `CheckpointManager`, one directory per save, three items.

```
checkpoints/ckpt_<step, 12 digits>/
  state/    the learner state and the loop's carry (keys, env state, counters): any pytree
  replay/   the online replay buffer (only when the run saves it: --buffer-in-checkpoint)
  meta/     JSON: step, the loop's meta (clock, env steps ...), the leaves of each item (path,
            shape, dtype, PRNG impl) and the device layout that saved it
```

The manager keeps the newest `keep` saves (max_to_keep), writes each into a temporary directory
renamed when every process has finished (a killed save leaves nothing under a step's name) and
removes such temporaries when it is opened again. A restore reads the items it is asked for: the
actor of a render never opens `replay/`. Leaves are checked against the caller's template (path,
shape, dtype) with one-line errors, and land on the template's shardings, so a checkpoint of any
device layout restores onto the current one (orbax reshards). PRNG keys are stored as their key
data; empty arrays (which orbax refuses) are not stored and come back as zeros.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from crlkit import files

Pytree = Any

STATE, REPLAY, META = "state", "replay", "meta"
STEP_PREFIX = "ckpt"
CHECKPOINT_RE = re.compile(rf"^{STEP_PREFIX}_(\d{{12}})$")
CORRUPT_SUFFIX = ".corrupt"


class RunDirError(ValueError):
    """A run directory or checkpoint problem the user can fix; the message is one line."""


class CorruptCheckpoint(RunDirError):
    """A checkpoint that cannot be read (damaged on disk)."""


class Restored(NamedTuple):
    """What `Checkpoints.load` hands back."""

    tree: Pytree
    step: int
    meta: dict
    replay: Pytree | None  # None when not asked for or not saved


def list_checkpoints(directory: str | os.PathLike) -> list[tuple[int, Path]]:
    """(step, path) of the complete checkpoints in `directory`, oldest first (no orbax needed:
    temporaries of an unfinished save carry another name)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    matches = ((CHECKPOINT_RE.match(p.name), p) for p in directory.iterdir())
    return sorted((int(m.group(1)), p) for m, p in matches if m and p.is_dir())


def find_checkpoint(directory: str | os.PathLike, step: int | None = None) -> tuple[int, Path]:
    """(step, path) of the newest checkpoint, or of the one saved at `step`.

    Raises RunDirError (one line) when there is no (such) checkpoint.
    """
    found = list_checkpoints(directory)
    where = Path(directory)
    if not found:
        raise RunDirError(f"{where.parent}: no checkpoint in {where.name}/ yet")
    if step is None:
        return found[-1]
    for saved, path in found:
        if saved == step:
            return saved, path
    steps = ", ".join(str(s) for s, _ in found)
    raise RunDirError(f"{where.parent}: no checkpoint at step {step}; saved steps: {steps}")


def layout() -> dict[str, int]:
    """The device layout of this process group, as a checkpoint's meta records it."""
    return {"devices": jax.device_count(), "processes": jax.process_count()}


def _layout_text(lay: Mapping) -> str:
    return f"{lay.get('devices', '?')} device(s) in {lay.get('processes', '?')} process(es)"


class Checkpoints:
    """The checkpoints of one run directory (every process of a multi-host run opens it)."""

    def __init__(self, directory: str | os.PathLike, keep: int = 3):
        self.directory = Path(directory).absolute()
        self.keep = keep
        self._manager: Any = None

    @property
    def manager(self):
        """orbax's CheckpointManager, opened on first use (it removes a killed save's temps)."""
        if self._manager is None:
            import orbax.checkpoint as ocp

            _avoid_tensorstore_leaks()
            options = ocp.CheckpointManagerOptions(
                max_to_keep=self.keep,
                step_prefix=STEP_PREFIX,
                step_format_fixed_length=12,
                create=True,
                cleanup_tmp_directories=True,
                enable_async_checkpointing=False,
            )
            self._manager = ocp.CheckpointManager(self.directory, options=options)
        return self._manager

    def steps(self) -> list[int]:
        return [s for s, _ in list_checkpoints(self.directory)]

    def path(self, step: int) -> Path:
        return self.directory / f"{STEP_PREFIX}_{int(step):012d}"

    # -- save ---------------------------------------------------------------------------------

    def save(
        self, step: int, tree: Pytree, meta: Mapping | None = None, replay: Pytree | None = None
    ) -> Path:
        """Save `tree` (and `replay`, if given) at `step`; every process calls it. A step saved
        already is kept as it is (a run stopped right after a periodic checkpoint)."""
        import orbax.checkpoint as ocp

        if int(step) in self.manager.all_steps():
            return self.path(step)
        items, leaves = {}, {}
        for name, item in ((STATE, tree), (REPLAY, replay)):
            if item is None:
                continue
            stored, leaves[name] = _to_stored(item)
            items[name] = ocp.args.PyTreeSave(stored)
        header = {
            "step": int(step),
            "saved_at": time.time(),
            "layout": layout(),
            "leaves": leaves,
            "meta": files.to_jsonable(dict(meta or {})),
        }
        items[META] = ocp.args.JsonSave(files.to_jsonable(header))
        with _orbax_errors_raised_not_logged():
            self.manager.save(int(step), args=ocp.args.Composite(**items))
            self.manager.wait_until_finished()
        return self.path(step)

    # -- restore ------------------------------------------------------------------------------

    def header(self, step: int) -> dict:
        """The meta item of the checkpoint at `step` (CorruptCheckpoint when unreadable)."""
        import orbax.checkpoint as ocp

        try:
            args = ocp.args.Composite(meta=ocp.args.JsonRestore())
            restored = self.manager.restore(step, args=args)
            header = dict(restored[META])
            header["leaves"][STATE]  # noqa: B018 - a header without it is damaged
        except Exception as err:  # orbax/tensorstore raise many kinds for a damaged directory
            raise CorruptCheckpoint(_unreadable(self.path(step), err)) from None
        return header

    def has_replay(self, step: int) -> bool:
        return REPLAY in self.header(step)["leaves"]

    def load(self, step: int, template: Pytree, replay: Pytree | None = None) -> Restored:
        """The checkpoint at `step` restored into `template` (and `replay` when the checkpoint
        holds the buffer and a template for it is given; the item is not opened otherwise).

        Template leaves are arrays, `jax.ShapeDtypeStruct`s (from `jax.eval_shape`, with the
        shardings to restore onto) or host values; each must match the stored leaf in path,
        shape and dtype (one-line RunDirError).
        """
        import orbax.checkpoint as ocp

        header = self.header(step)
        path = self.path(step)
        wanted = {STATE: template}
        if replay is not None and REPLAY in header["leaves"]:
            wanted[REPLAY] = replay
        plans = {name: _plan(header["leaves"][name], like, path) for name, like in wanted.items()}
        args = {name: _restore_args(plan) for name, plan in plans.items()}
        try:
            restored = self.manager.restore(step, args=ocp.args.Composite(**args))
        except Exception as err:  # see header
            _raise_restore_error(path, header, err)
        trees = {name: _rebuild(plans[name], restored[name]) for name in wanted}
        return Restored(trees[STATE], int(header["step"]), header["meta"], trees.get(REPLAY))

    def load_leaves(
        self, step: int, select: Callable[[str], bool] = lambda _: True, item: str = STATE
    ) -> dict[str, np.ndarray]:
        """Host copies of the leaves of `item` whose path `select` accepts (a partial restore:
        other leaves and items are never read), by leaf path (PRNG keys as key data)."""
        import orbax.checkpoint as ocp

        header = self.header(step)
        path = self.path(step)
        local = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        tree: dict = {}
        restore_args: dict = {}
        chosen = [leaf for leaf in header["leaves"].get(item, []) if select(leaf["path"])]
        for leaf in chosen:
            if int(np.prod(leaf["shape"])) == 0:
                continue
            shape, dtype = tuple(leaf["shape"]), np.dtype(leaf["dtype"])
            _nest(tree, leaf["names"], jax.ShapeDtypeStruct(shape, dtype, sharding=local))
            _nest(restore_args, leaf["names"], ocp.ArrayRestoreArgs(sharding=local))
        args = ocp.args.PyTreeRestore(item=tree, restore_args=restore_args, partial_restore=True)
        restored: dict = {}
        try:
            if tree:
                restored = self.manager.restore(step, args=ocp.args.Composite(**{item: args}))[item]
        except Exception as err:  # see header
            _raise_restore_error(path, header, err)
        out = {}
        for leaf in chosen:
            if int(np.prod(leaf["shape"])) == 0:
                out[leaf["path"]] = np.zeros(leaf["shape"], leaf["dtype"])
            else:
                out[leaf["path"]] = np.asarray(_get(restored, leaf["names"]))
        return out

    def set_aside(self, step: int) -> Path:
        """Rename a damaged checkpoint to <name>.corrupt, so it is never taken again."""
        path = self.path(step)
        target = path.with_name(path.name + CORRUPT_SUFFIX)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(path, target)
        if self._manager is not None:
            self._manager.reload()
        return target

    def close(self) -> None:
        if self._manager is not None:
            self._manager.close()
            self._manager = None


@contextlib.contextmanager
def _orbax_errors_raised_not_logged():
    """orbax's save threads log an exception (absl's Python logger, ERROR with its traceback;
    asyncio's for the gathered writes it leaves unretrieved) before raising it to the caller, who
    reports it once: a full disk is one line and exit 74 (RunDir), not a hundred lines of the
    same traceback around it. After a failed save, the loggers stay quiet (the writes orbax
    abandoned keep failing, and logging, after the save has raised: ~2 of 3 disk-full runs
    measured printed 7 to 240 lines after crlkit's), the write coroutines orbax never awaited
    are not warned about, nor do their late callbacks print (see
    `_ignore_writes_finishing_after_their_loop`)."""
    _ignore_writes_finishing_after_their_loop()
    loggers = [logging.getLogger(name) for name in ("absl", "asyncio")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    except BaseException:
        # The run stops. orbax's abandoned writes go on failing on its threads after this (and
        # asyncio reports each unretrieved one when it is collected, at exit): their loggers
        # stay at CRITICAL for the rest of the process, so crlkit's line is the last one.
        warnings.filterwarnings("ignore", "coroutine .* was never awaited", RuntimeWarning)
        raise
    else:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _ignore_writes_finishing_after_their_loop() -> None:
    """After a failed save, the tensorstore writes orbax abandoned still finish (or fail) on
    tensorstore's threads, and each one's done-callback schedules onto the asyncio loop orbax
    has closed since: asyncio raises RuntimeError("Event loop is closed") there, which reaches
    `sys.unraisablehook` and prints as a traceback around crlkit's one line (in ~1 of 3 disk-full
    saves measured), sometimes before the failed save has returned. Installed at the first save:
    exactly that error is dropped; every other unraisable exception prints as before."""
    hook = sys.unraisablehook
    if getattr(hook, "_crlkit", False):
        return

    def unraisable_hook(info: Any) -> None:
        exc = info.exc_value
        if not (isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed"):
            hook(info)

    unraisable_hook._crlkit = True  # type: ignore[attr-defined]
    sys.unraisablehook = unraisable_hook


def _avoid_tensorstore_leaks() -> None:
    """Keep orbax away from the two tensorstore calls that leak on every checkpoint save.

    tensorstore (0.1.86) leaks a reference to every nested value of a JSON result it converts
    to Python (and native memory with it). orbax (0.12) makes two such calls per save:
    `tensorstore_utils.get_tensorstore_raw_bytes`, which collects tensorstore's metrics twice per
    item to log the raw bytes written, and `KvStore.Spec(base).to_json()` in
    `_build_ocdbt_kvstore_tspec`, once per array (the `file` base spec of every leaf's OCDBT
    store; its path string leaks). A long run's RSS grew ~100-140 KB per checkpoint with them.
    The first only feeds a log line and `jax.monitoring`: orbax skips both when the reading is
    None. The second resolves a plain `file` spec to itself, so the module's `tensorstore` is
    replaced by one whose `KvStore.Spec` answers `to_json` of such a spec from the dict (checked
    against tensorstore once, on the first path; any other spec goes to tensorstore). Nothing
    changes on disk. Idempotent; orbax versions without these functions are left alone.
    """
    try:
        from orbax.checkpoint._src.serialization import tensorstore_utils
    except ImportError:
        return
    raw_bytes = getattr(tensorstore_utils, "get_tensorstore_raw_bytes", None)
    if raw_bytes is not None and not getattr(raw_bytes, "_crlkit", False):

        def no_raw_bytes(direction: Any = None) -> None:
            return None

        no_raw_bytes._crlkit = True  # type: ignore[attr-defined]
        tensorstore_utils.get_tensorstore_raw_bytes = no_raw_bytes
    ts = getattr(tensorstore_utils, "ts", None)
    if hasattr(tensorstore_utils, "_build_ocdbt_kvstore_tspec") and hasattr(ts, "KvStore"):
        if not isinstance(ts, _Tensorstore):
            tensorstore_utils.ts = _Tensorstore(ts)


class _FileSpec:
    """A plain `{"driver": "file", "path": ...}` KvStore spec, its JSON read from the dict."""

    def __init__(self, spec: dict, real: Any):
        self.spec, self.real = spec, real

    def to_json(self) -> dict:
        return dict(self.spec)


class _KvStore:
    """tensorstore.KvStore for orbax's tensorstore_utils: `Spec(...).to_json()` of a plain file
    spec without the leak (see `_avoid_tensorstore_leaks`); everything else is tensorstore's."""

    def __init__(self, kvstore: Any):
        self._kvstore = kvstore
        self._checked: bool | None = None  # None: not compared with tensorstore yet

    def __getattr__(self, name: str) -> Any:
        return getattr(self._kvstore, name)

    def Spec(self, spec: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N802 - tensorstore's
        plain = (
            not args
            and not kwargs
            and isinstance(spec, dict)
            and set(spec) == {"driver", "path"}
            and spec["driver"] == "file"
            and isinstance(spec["path"], str)
        )
        real = self._kvstore.Spec(spec, *args, **kwargs)
        if not plain or self._checked is False:
            return real
        if self._checked is None:  # one conversion (one small leak) to be sure they agree
            self._checked = real.to_json() == spec
            if not self._checked:
                return real
        return _FileSpec(dict(spec), real)

    def open(self, spec: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(spec, _FileSpec):
            spec = spec.real
        return self._kvstore.open(spec, *args, **kwargs)


class _Tensorstore:
    """The tensorstore module as orbax's tensorstore_utils sees it: KvStore is `_KvStore`."""

    def __init__(self, ts: Any):
        self._ts = ts
        self.KvStore = _KvStore(ts.KvStore)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ts, name)


def _unreadable(path: Path, err: BaseException) -> str:
    return f"checkpoint {path} is unreadable ({type(err).__name__})"


def _raise_restore_error(path: Path, header: dict, err: BaseException):
    """A checkpoint of another device layout that orbax cannot place: one line naming both;
    otherwise the checkpoint is damaged."""
    saved = header.get("layout") or {}
    if saved and saved != layout():
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise RunDirError(
            f"checkpoint {path} was saved on {_layout_text(saved)} and cannot be restored on "
            f"{_layout_text(layout())} ({type(err).__name__}: {first})"
        ) from None
    raise CorruptCheckpoint(_unreadable(path, err)) from None


# ---------------------------------------------------------------------------------------------
# Leaves: what orbax stores, and the template checks


def _names(key_path: tuple) -> list[str]:
    """A pytree path as the nested dict keys the item stores it under."""
    out = []
    for k in key_path:
        for attr in ("key", "name", "idx"):
            if hasattr(k, attr):
                out.append(str(getattr(k, attr)))
                break
        else:
            out.append(str(k))
    return out


def _nest(tree: dict, names: list[str], value: Any) -> None:
    for name in names[:-1]:
        tree = tree.setdefault(name, {})
    tree[names[-1]] = value


def _get(tree: Any, names: list[str]) -> Any:
    for name in names:
        tree = tree[name]
    return tree


def _is_key(x: Any) -> bool:
    dtype = getattr(x, "dtype", None)
    return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def _to_stored(tree: Pytree) -> tuple[dict, list[dict]]:
    """The nested dict orbax saves (non-empty leaves; PRNG keys as key data) and the header's
    leaf list (path, names, shape, dtype, PRNG impl)."""
    stored: dict = {}
    header = []
    for key_path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        info: dict[str, Any] = {"path": jax.tree_util.keystr(key_path), "names": _names(key_path)}
        if _is_key(leaf):
            info["prng_impl"] = str(jax.random.key_impl(leaf))
            info["key_shape"] = list(leaf.shape)
            leaf = jax.random.key_data(leaf)
        if not isinstance(leaf, jax.Array):
            leaf = np.asarray(leaf)
        info["shape"], info["dtype"] = list(leaf.shape), str(np.dtype(leaf.dtype))
        header.append(info)
        if leaf.size:
            _nest(stored, info["names"], leaf)
    return stored, header


class _Plan(NamedTuple):
    treedef: Any
    leaves: list  # (template leaf, stored info)


def _plan(stored: list[dict], template: Pytree, path: Path) -> _Plan:
    """Check `template` against the stored leaves (one-line RunDirError) -> the restore plan."""
    flat, treedef = jax.tree_util.tree_flatten_with_path(template)
    if len(stored) != len(flat):
        raise RunDirError(
            f"checkpoint {path} holds {len(stored)} arrays but the run expects {len(flat)};"
            f" it was saved by a different model or settings"
        )
    for i, ((key_path, like), info) in enumerate(zip(flat, stored, strict=True)):
        name = jax.tree_util.keystr(key_path)
        if info["path"] != name:
            raise RunDirError(
                f"checkpoint {path} leaf {i} is {info['path']} but the run expects {name}"
            )
        _check_leaf(info, like, name, path)
    return _Plan(treedef, [(like, info) for (_, like), info in zip(flat, stored, strict=True)])


def _check_leaf(info: dict, like: Any, name: str, path: Any) -> None:
    """One-line RunDirError unless the stored leaf fits the template leaf in shape and dtype."""
    like_shape = tuple(getattr(like, "shape", np.shape(like)))
    shape = tuple(info.get("key_shape", info["shape"]))
    if shape != like_shape:
        raise RunDirError(
            f"checkpoint {path} leaf {name} has shape {shape};"
            f" the run expects {like_shape} (saved with other sizes, e.g. --num-envs)"
        )
    like_dtype = getattr(like, "dtype", None)
    if like_dtype is not None and jax.dtypes.issubdtype(like_dtype, jax.dtypes.prng_key):
        if "prng_impl" not in info:
            raise RunDirError(f"checkpoint {path} leaf {name} is not a PRNG key")
        return
    if like_dtype is not None and str(np.dtype(like_dtype)) != info["dtype"]:
        raise RunDirError(
            f"checkpoint {path} leaf {name} has dtype {info['dtype']};"
            f" the run expects {np.dtype(like_dtype)}"
        )


def _on_device(like: Any) -> bool:
    return isinstance(like, (jax.Array, jax.ShapeDtypeStruct))


def _sharding(like: Any) -> Any:
    """Where a template leaf is restored: its sharding, else this process's first device."""
    return getattr(like, "sharding", None) or jax.sharding.SingleDeviceSharding(
        jax.local_devices()[0]
    )


def _restore_args(plan: _Plan):
    """orbax's PyTreeRestore for the non-empty leaves of a plan."""
    import orbax.checkpoint as ocp

    item: dict = {}
    restore_args: dict = {}
    for like, info in plan.leaves:
        if int(np.prod(info["shape"])) == 0:
            continue
        dtype = np.dtype(info["dtype"])
        if _on_device(like):
            where = _sharding(like)
            args = ocp.ArrayRestoreArgs(sharding=where, global_shape=tuple(info["shape"]))
        else:
            where = None
            args = ocp.RestoreArgs(restore_type=np.ndarray, dtype=dtype)
        like = jax.ShapeDtypeStruct(tuple(info["shape"]), dtype, sharding=where)
        _nest(item, info["names"], like)
        _nest(restore_args, info["names"], args)
    return ocp.args.PyTreeRestore(item=item, restore_args=restore_args)


def _rebuild(plan: _Plan, restored: dict) -> Pytree:
    """The template's structure filled with the restored leaves (empty ones made anew)."""
    leaves = []
    for like, info in plan.leaves:
        if int(np.prod(info["shape"])) == 0:
            value = np.zeros(info["shape"], info["dtype"])
            value = _put(value, _sharding(like)) if _on_device(like) else value
        else:
            value = _get(restored, info["names"])
        if "prng_impl" in info:
            value = jax.random.wrap_key_data(value, impl=info["prng_impl"])
        elif not _on_device(like):
            value = _host_value(np.asarray(value), like)
        leaves.append(value)
    return jax.tree_util.tree_unflatten(plan.treedef, leaves)


def _host_value(arr: np.ndarray, like: Any) -> Any:
    if isinstance(like, np.ndarray):
        return arr
    return type(like)(arr.item()) if isinstance(like, (bool, int, float)) else arr


def _put(arr: np.ndarray, sharding: Any) -> jax.Array:
    """A host array on `sharding`, also one spanning other processes."""
    if sharding.is_fully_addressable:
        return jax.device_put(arr, sharding)
    return jax.make_array_from_callback(arr.shape, sharding, lambda idx: arr[idx])
