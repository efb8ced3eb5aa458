"""Run directories shared by `crlkit online` and `crlkit offline`: config, logs, checkpoints.

```
runs/<name>-d<depth>-<YYYYmmdd-HHMMSS>/
  config.json         the run's config (frozen dataclasses as JSON); resume compares against it
  metrics.jsonl       one JSON object per log event: {"step": ..., "time": ..., <metrics>}
  metrics.csv         the same events as a table; columns grow as new metrics appear
  summary.json        final numbers, written by the loop at the end
  checkpoints/        ckpt-<step, 12 digits>.npz, the last K kept
```

Every file is written atomically (a temp file in the same folder, then `os.replace`), so a run
killed at any instant (even SIGKILL) leaves each file either at its old or at its new content, and
a checkpoint that was being written is never found under a checkpoint name. See docs/runs.md.
"""

from __future__ import annotations

import csv
import dataclasses
import enum
import io
import json
import math
import os
import re
import tempfile
import time
import warnings
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

Pytree = Any

CONFIG_FILE = "config.json"
METRICS_JSONL = "metrics.jsonl"
METRICS_CSV = "metrics.csv"
SUMMARY_FILE = "summary.json"
CHECKPOINT_DIR = "checkpoints"
_TMP_PREFIX = ".tmp-"
_CKPT_RE = re.compile(r"^ckpt-(\d{12})\.npz$")
_META_KEY = "__meta__"
CHECKPOINT_FORMAT = 1


class RunDirError(ValueError):
    """A run directory problem the user can fix; the message is one line."""


class CorruptCheckpoint(RunDirError):
    """A checkpoint file that cannot be read (truncated or damaged on disk)."""


class NonFiniteLoss(RuntimeError):
    """Training produced a non-finite loss or parameter; the last finite state was checkpointed."""


# ---------------------------------------------------------------------------------------------
# Atomic files


_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` via a temp file in the same folder, fsync and `os.replace`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_TMP_PREFIX, suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600 files; give the result the usual mode (0666 minus the umask).
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        _remove_quietly(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write `obj` as indented JSON (non-finite floats become null), atomically."""
    atomic_write_bytes(path, (json.dumps(to_jsonable(obj), indent=2) + "\n").encode())


def to_jsonable(obj: Any) -> Any:
    """Plain JSON values for configs and metrics: dataclasses, mappings, sequences, array scalars.

    Non-finite floats become None (strict JSON has no NaN); 0-d arrays become Python scalars.
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, enum.Enum):
        return to_jsonable(obj.value)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (np.ndarray, np.generic, jax.Array)):
        arr = np.asarray(obj)
        return to_jsonable(arr.item() if arr.ndim == 0 else arr.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot write a {type(obj).__name__} to JSON: {obj!r}")


# ---------------------------------------------------------------------------------------------
# Config


def default_out_dir(name: str, depth: int, root: str | os.PathLike = "runs") -> Path:
    """A fresh `runs/<name>-d<depth>-<YYYYmmdd-HHMMSS>` (suffixed -2, -3... if taken)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "run"
    base = Path(root) / f"{safe}-d{depth}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def config_diff(stored: Mapping, current: Mapping, ignore: Iterable[str] = ()) -> list[str]:
    """Dotted names of the fields that differ, each as 'name (stored X, now Y)'."""
    a, b = _flatten(to_jsonable(stored)), _flatten(to_jsonable(current))
    ignore = tuple(ignore)
    missing = object()
    out = []
    for key in sorted(set(a) | set(b)):
        if any(key == i or key.startswith(i + ".") for i in ignore):
            continue
        old, new = a.get(key, missing), b.get(key, missing)
        if old != new:
            show = lambda v: "<absent>" if v is missing else json.dumps(v)
            out.append(f"{key} (stored {show(old)}, now {show(new)})")
    return out


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists stay whole values."""
    if not isinstance(tree, dict) or not tree:
        return {prefix: tree} if prefix else {}
    out = {}
    for k, v in tree.items():
        out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


# ---------------------------------------------------------------------------------------------
# Checkpoints: one .npz per step, leaves in flatten order, restored into a template pytree


def save_checkpoint(
    directory: str | os.PathLike, tree: Pytree, step: int, meta: Mapping | None = None
) -> Path:
    """Write `tree` (any pytree of arrays, PRNG keys and scalars) as ckpt-<step>.npz, atomically.

    Args:
      directory: the checkpoints folder (created if missing).
      tree: params, optimizer states, RNG keys, counters, env state, replay buffer, ...
      step: the loop's progress counter; names the file and orders checkpoints.
      meta: optional JSON-able extras stored alongside (returned by `load_checkpoint`).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    arrays, leaves_meta = {}, []
    for i, (path, leaf) in enumerate(flat):
        arr, info = _leaf_to_numpy(leaf)
        arrays[f"leaf_{i:05d}"] = arr
        leaves_meta.append({"path": jax.tree_util.keystr(path), **info})
    header = {
        "format": CHECKPOINT_FORMAT,
        "step": int(step),
        "saved_at": time.time(),
        "leaves": leaves_meta,
        "meta": to_jsonable(dict(meta or {})),
    }
    arrays[_META_KEY] = np.array(json.dumps(header))
    target = directory / f"ckpt-{int(step):012d}.npz"
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=_TMP_PREFIX, suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        _remove_quietly(tmp)
        raise
    _fsync_dir(directory)
    return target


def load_checkpoint(path: str | os.PathLike, template: Pytree) -> tuple[Pytree, int, dict]:
    """Read a checkpoint into the structure of `template` -> (tree, step, meta).

    `template` is a pytree like the saved one (arrays, `jax.ShapeDtypeStruct`s from
    `jax.eval_shape`, or scalars); each leaf must match in path, shape and dtype. Leaves come
    back as jax arrays on the template leaf's sharding (numpy arrays / Python scalars where the
    template has those).
    """
    header, arrays = read_checkpoint_file(path)
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
        leaves.append(_leaf_from_numpy(arrays[f"leaf_{i:05d}"], info, like, name, path))
    return jax.tree_util.tree_unflatten(treedef, leaves), int(header["step"]), header["meta"]


def list_checkpoints(directory: str | os.PathLike) -> list[tuple[int, Path]]:
    """(step, path) of the complete checkpoints in `directory`, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _CKPT_RE.match(p.name))]
    return sorted(found)


def _leaf_to_numpy(leaf: Any) -> tuple[np.ndarray, dict]:
    """Host copy of one leaf plus what restoring it needs (PRNG impl, exotic dtype)."""
    info: dict[str, Any] = {}
    dtype = getattr(leaf, "dtype", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        info["prng_impl"] = str(jax.random.key_impl(leaf))
        info["shape"] = list(leaf.shape)
        leaf = jax.random.key_data(leaf)
    arr = np.asarray(leaf)
    info.setdefault("shape", list(arr.shape))
    info["dtype"] = str(arr.dtype)
    if not arr.dtype.isbuiltin:  # e.g. bfloat16: npz would store raw void bytes, keep them as uint
        arr = arr.view(f"u{arr.dtype.itemsize}")
    return arr, info


def _leaf_from_numpy(arr: np.ndarray, info: dict, like: Any, name: str, path: Any) -> Any:
    """Rebuild one leaf shaped and typed like the template leaf `like`."""
    like_dtype = getattr(like, "dtype", None)
    like_shape = tuple(getattr(like, "shape", np.shape(like)))
    if tuple(info["shape"]) != like_shape:
        raise RunDirError(
            f"checkpoint {path} leaf {name} has shape {tuple(info['shape'])};"
            f" the run expects {like_shape}"
        )
    if like_dtype is not None and jax.dtypes.issubdtype(like_dtype, jax.dtypes.prng_key):
        if "prng_impl" not in info:
            raise RunDirError(f"checkpoint {path} leaf {name} is not a PRNG key")
        value = jax.random.wrap_key_data(arr, impl=info["prng_impl"])
        return jax.device_put(value, _sharding(like))
    if like_dtype is not None and str(np.dtype(like_dtype)) != info["dtype"]:
        raise RunDirError(
            f"checkpoint {path} leaf {name} has dtype {info['dtype']};"
            f" the run expects {np.dtype(like_dtype)}"
        )
    if str(arr.dtype) != info["dtype"]:
        arr = arr.view(np.dtype(like_dtype))
    if isinstance(like, (jax.Array, jax.ShapeDtypeStruct)):
        return jax.device_put(arr, _sharding(like))
    if isinstance(like, np.ndarray):
        return arr
    return type(like)(arr.item()) if isinstance(like, (bool, int, float)) else arr


def _sharding(like: Any) -> Any:
    """Where a template leaf lives (None: the default device)."""
    return getattr(like, "sharding", None)


def read_checkpoint_file(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """Header and arrays of a checkpoint file; raises `CorruptCheckpoint` if it cannot be read."""
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


# ---------------------------------------------------------------------------------------------
# The run directory


class RunDir:
    """One run's folder: config.json, metrics.jsonl/csv, summary.json, checkpoints/.

    Create with `RunDir.create(...)`; call `restore(template)` when resuming, `log(step, metrics)`
    at each log event, `save_checkpoint(tree, step)` every checkpoint interval,
    `write_summary(...)` at the end and `close()` (or use it as a context manager).
    """

    def __init__(self, path: Path, config: dict, keep_checkpoints: int, sinks: list):
        self.path = path
        self.config = config
        self.keep_checkpoints = keep_checkpoints
        self.checkpoint_dir = path / CHECKPOINT_DIR
        self._sinks = sinks
        self._events: list[dict] = []
        self._columns: list[str] = []

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        config: Any,
        *,
        resume: bool = False,
        ignore_on_resume: Sequence[str] = (),
        keep_checkpoints: int = 3,
        tensorboard: bool = False,
        wandb_project: str | None = None,
    ) -> RunDir:
        """Open a new run dir, or an existing one to resume.

        Args:
          path: the run folder (`--out`); see `default_out_dir`.
          config: a frozen dataclass, or a mapping of them (e.g. {"learner": ..., "online": ...}).
          resume: False: `path` must not exist or be empty. True: it must hold a config.json
            equal to `config` except for the dotted names in `ignore_on_resume`
            (e.g. "online.steps").
          keep_checkpoints: how many of the newest checkpoints to keep (>= 1).
          tensorboard: also log scalars to <path>/tensorboard (needs tensorboardX or torch).
          wandb_project: also log to Weights & Biases under this project (needs wandb).
        """
        path = Path(path)
        if keep_checkpoints < 1:
            raise RunDirError(f"keep_checkpoints must be >= 1, got {keep_checkpoints}")
        config_dict = to_jsonable(config)
        if resume:
            _check_resumable(path, config_dict, ignore_on_resume)
        elif path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise RunDirError(
                f"run dir {path} already exists; resume it with --resume or choose another --out"
            )
        path.mkdir(parents=True, exist_ok=True)
        (path / CHECKPOINT_DIR).mkdir(exist_ok=True)
        _remove_temp_files(path)
        _remove_temp_files(path / CHECKPOINT_DIR)
        atomic_write_json(path / CONFIG_FILE, config_dict)
        sinks = _open_sinks(path, config_dict, tensorboard, wandb_project)
        run = cls(path, config_dict, keep_checkpoints, sinks)
        if resume:
            run._events = read_events(path / METRICS_JSONL)
            run._rewrite_logs()
        return run

    # -- logging ------------------------------------------------------------------------------

    def log(self, step: int, metrics: Mapping[str, Any]) -> dict:
        """Record one event (scalars only) in metrics.jsonl, metrics.csv and the optional sinks."""
        event = {"step": int(step), "time": round(time.time(), 3)}
        for name, value in metrics.items():
            value = to_jsonable(value)
            if isinstance(value, (list, dict)):
                raise ValueError(f"metric {name!r} is not a scalar: {value!r}")
            event[str(name)] = value
        self._events.append(event)
        with open(self.path / METRICS_JSONL, "a") as f:
            f.write(json.dumps(event) + "\n")
        new_columns = [k for k in event if k not in self._columns]
        if new_columns:  # the header grows: rewrite the whole table atomically
            self._columns += new_columns
            atomic_write_bytes(self.path / METRICS_CSV, self._csv_text(self._events))
        else:
            with open(self.path / METRICS_CSV, "a", newline="") as f:
                f.write(self._csv_text([event], header=False).decode())
        for sink in self._sinks:
            sink.log(event)
        return event

    @property
    def events(self) -> list[dict]:
        """All logged events of this run (across resumes), oldest first."""
        return list(self._events)

    def write_summary(self, summary: Mapping[str, Any]) -> None:
        """Write summary.json (final eval metrics, env steps, wall seconds, device, ...)."""
        atomic_write_json(self.path / SUMMARY_FILE, summary)

    # -- checkpoints --------------------------------------------------------------------------

    def save_checkpoint(self, tree: Pytree, step: int, meta: Mapping | None = None) -> Path:
        """Atomically save `tree` at `step`, then delete all but the newest `keep_checkpoints`."""
        target = save_checkpoint(self.checkpoint_dir, tree, step, meta)
        for _, old in list_checkpoints(self.checkpoint_dir)[: -self.keep_checkpoints]:
            _remove_quietly(old)
        return target

    def restore(self, template: Pytree) -> tuple[Pytree, int, dict] | None:
        """Load the newest readable checkpoint into `template` -> (tree, step, meta), or None.

        Log events after the restored step (written before the run died, and about to be
        repeated) are dropped; with no checkpoint all events are dropped, since the run restarts.
        An unreadable file is renamed to <name>.corrupt (so it is never taken again) and the next
        older one is tried, with a warning; a checkpoint that does not fit `template` raises
        RunDirError.
        """
        restored = None
        for _, path in reversed(list_checkpoints(self.checkpoint_dir)):
            try:
                restored = load_checkpoint(path, template)
                break
            except CorruptCheckpoint as err:
                warnings.warn(f"{err}; set aside as .corrupt, trying an older one", stacklevel=2)
                os.replace(path, path.with_name(path.name + ".corrupt"))
        keep_until = restored[1] if restored else -1
        self._events = [e for e in self._events if e["step"] <= keep_until]
        self._rewrite_logs()
        return restored

    def latest_checkpoint_step(self) -> int | None:
        """Step of the newest checkpoint file, or None."""
        found = list_checkpoints(self.checkpoint_dir)
        return found[-1][0] if found else None

    # -- files --------------------------------------------------------------------------------

    def _rewrite_logs(self) -> None:
        """Rewrite metrics.jsonl and metrics.csv from the in-memory events, atomically."""
        self._columns = []
        for e in self._events:
            self._columns += [k for k in e if k not in self._columns]
        text = "".join(json.dumps(e) + "\n" for e in self._events)
        atomic_write_bytes(self.path / METRICS_JSONL, text.encode())
        atomic_write_bytes(self.path / METRICS_CSV, self._csv_text(self._events))

    def _csv_text(self, events: list[dict], header: bool = True) -> bytes:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self._columns, restval="", lineterminator="\n")
        if header:
            writer.writeheader()
        writer.writerows(events)
        return buf.getvalue().encode()

    def close(self) -> None:
        """Flush and close the optional sinks."""
        for sink in self._sinks:
            sink.close()
        self._sinks = []

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _check_resumable(path: Path, config: dict, ignore: Sequence[str]) -> None:
    """Raise a one-line RunDirError unless `path` holds a run with the same config."""
    config_file = path / CONFIG_FILE
    if not config_file.is_file():
        raise RunDirError(f"cannot resume {path}: no {CONFIG_FILE} there (not a crlkit run dir)")
    try:
        stored = json.loads(config_file.read_text())
    except (OSError, ValueError) as err:
        raise RunDirError(f"cannot resume {path}: unreadable {CONFIG_FILE} ({err})") from None
    diff = config_diff(stored, config, ignore)
    if diff:
        raise RunDirError(
            f"cannot resume {path}: its config differs in {len(diff)} field(s): {'; '.join(diff)}"
        )


def read_events(path: Path) -> list[dict]:
    """Events of a metrics.jsonl; a torn last line (the run was killed mid-write) is dropped."""
    if not path.is_file():
        return []
    events = []
    for line in path.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events


@dataclasses.dataclass
class Clock:
    """Seconds a run has spent so far (carried across resumes in the checkpoint meta)."""

    wall: float = 0.0
    train: float = 0.0
    compile: float = 0.0


def _remove_temp_files(directory: Path) -> None:
    """Delete temp files left by a write that was killed (this run owns the folder)."""
    for p in directory.glob(_TMP_PREFIX + "*"):
        _remove_quietly(p)


def _remove_quietly(path: str | os.PathLike) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _fsync_dir(directory: Path) -> None:
    """Persist a rename in `directory` (no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------
# Optional sinks (used only when asked for, and only if the package is installed)


class _TensorBoardSink:
    def __init__(self, path: Path):
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise RunDirError(
                    "--tensorboard needs tensorboardX (pip install tensorboardX) or torch"
                ) from None
        self._writer = SummaryWriter(str(path / "tensorboard"))

    def log(self, event: dict) -> None:
        for name, value in event.items():
            if name not in ("step", "time") and _is_number(value):
                self._writer.add_scalar(name, value, event["step"], walltime=event["time"])
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class _WandbSink:
    def __init__(self, path: Path, config: dict, project: str):
        try:
            import wandb
        except ImportError:
            raise RunDirError("--wandb needs the wandb package (pip install wandb)") from None
        id_file = path / "wandb_id.txt"
        if id_file.is_file():  # a resumed run continues the same W&B run
            run_id = id_file.read_text().strip()
        else:
            run_id = wandb.util.generate_id()
            atomic_write_bytes(id_file, run_id.encode())
        self._run = wandb.init(
            project=project, name=path.name, id=run_id, resume="allow", dir=str(path), config=config
        )

    def log(self, event: dict) -> None:
        scalars = {k: v for k, v in event.items() if k != "step" and _is_number(v)}
        self._run.log(scalars, step=event["step"])

    def close(self) -> None:
        self._run.finish()


def _open_sinks(path: Path, config: dict, tensorboard: bool, wandb_project: str | None) -> list:
    sinks: list = []
    if tensorboard:
        sinks.append(_TensorBoardSink(path))
    if wandb_project:
        sinks.append(_WandbSink(path, config, wandb_project))
    return sinks


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# ---------------------------------------------------------------------------------------------
# Progress bar


class Progress:
    """A tqdm bar over the loop's step counter: rate (env steps/s or SGD steps/s), ETA, eval.

    `update(step)` takes the absolute step count; `set_eval(success=0.8)` shows the latest
    evaluation in the postfix. Disabled automatically when stderr is not a terminal (tqdm's
    default with `disable=None`).
    """

    def __init__(
        self,
        total: int,
        unit: str = "env steps",
        initial: int = 0,
        desc: str | None = None,
        disable: bool | None = None,
    ):
        from tqdm.auto import tqdm

        self._bar = tqdm(
            total=total,
            initial=initial,
            unit=" " + unit,  # the SI prefix sits before it: "12.3k env steps/s"
            unit_scale=True,
            desc=desc,
            disable=disable,
            dynamic_ncols=True,
            smoothing=0.3,
        )

    def update(self, step: int) -> None:
        """Move the bar to absolute `step`."""
        self._bar.update(int(step) - self._bar.n)

    def set_eval(self, **metrics: float) -> None:
        """Show the latest evaluation numbers (e.g. success=0.83) after the rate."""
        self._bar.set_postfix({k: f"{float(v):.3g}" for k, v in metrics.items()}, refresh=True)

    @property
    def n(self) -> int:
        """The step the bar shows."""
        return int(self._bar.n)

    def close(self) -> None:
        self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
