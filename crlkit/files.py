"""Atomic files and plain JSON: the one writer every crlkit file goes through.

A file is written to a hidden temp file in its target folder, flushed and fsynced, then renamed
over the target (`os.replace`), so a process killed at any instant (even SIGKILL) leaves the
target either at its old or at its new content. One permission policy for every file crlkit
writes (run files, checkpoints, datasets): the usual `0666` minus the process umask, applied by
the kernel when the temp file is created (no umask toggling).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import errno
import json
import math
import os
import re
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

TMP_PREFIX = ".tmp-"
FILE_MODE = 0o666  # the kernel subtracts the umask


@contextlib.contextmanager
def temp_beside(path: str | os.PathLike) -> Iterator[tuple[Path, IO[bytes]]]:
    """(temp path, binary file) beside `path`, flushed and fsynced when the block ends.

    The caller renames the temp into place (`os.replace`), possibly together with other files;
    the temp is removed if the block raises.
    """
    path = Path(path)
    tmp = path.parent / f"{TMP_PREFIX}{secrets.token_hex(6)}-{path.name}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as f:
            yield tmp, f
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        remove_quietly(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[IO[bytes]]:
    """Binary file object whose content replaces `path` only when the block ends without error."""
    with temp_beside(path) as (tmp, f):
        yield f
    try:
        os.replace(tmp, path)
    except BaseException:
        remove_quietly(tmp)
        raise
    fsync_dir(Path(path).parent)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temp path beside `path` (same suffix, for writers that pick a format by name, e.g. video
    encoders) that replaces `path` when the block ends without error; removed otherwise."""
    path = Path(path)
    with temp_beside(path) as (tmp, _):
        pass
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        remove_quietly(tmp)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_open(path) as f:
        f.write(data)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write `obj` as indented JSON (non-finite floats become null), atomically."""
    atomic_write_bytes(path, (json.dumps(to_jsonable(obj), indent=2) + "\n").encode())


def read_json(path: str | os.PathLike) -> dict[str, Any] | None:
    """A JSON object from `path`, or None when the file is missing or unreadable."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


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
    if hasattr(obj, "__array__") and hasattr(obj, "dtype"):  # numpy and jax arrays
        arr = np.asarray(obj)
        return to_jsonable(arr.item() if arr.ndim == 0 else arr.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot write a {type(obj).__name__} to JSON: {obj!r}")


def flatten_dict(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists stay whole values."""
    if not isinstance(tree, Mapping) or not tree:
        return {prefix: tree} if prefix else {}
    out: dict[str, Any] = {}
    for k, v in tree.items():
        out.update(flatten_dict(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def remove_temp_files(directory: str | os.PathLike) -> None:
    """Delete temp files left in `directory` by a write that was killed."""
    for p in Path(directory).glob(TMP_PREFIX + "*"):
        remove_quietly(p)


def remove_quietly(path: str | os.PathLike) -> None:
    """Remove a file that may already be gone."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def fsync_dir(directory: str | os.PathLike) -> None:
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
# Writable folders and failed writes

# The errors a write can meet that no retry fixes: full disk or quota, read-only file system,
# no permission, a file where a folder should be, a broken device.
IO_ERRNOS = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a path component is a file, not a folder",
    errno.EIO: "I/O error",
}


def probe_writable_dir(directory: str | os.PathLike) -> Path:
    """Create `directory` (and its parents) and prove a file can be written there, or raise
    ValueError with one line naming the path and why (a file in the way, read-only, no space).

    Run before anything expensive (compiling, rolling out) so a bad output path fails at once.
    Root ignores file modes, so the probe writes a real file rather than asking `os.access`.
    """
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with temp_beside(directory / "write-probe") as (tmp, f):
            f.write(b"crlkit write probe\n")
        remove_quietly(tmp)
    except OSError as err:
        raise ValueError(f"cannot write to {directory}: {describe_os_error(err)}") from None
    return directory


def describe_os_error(err: OSError) -> str:
    """'<what> (<ERRNO>) at <path>' for an OSError, e.g. 'disk full (ENOSPC) at runs/x/a.npz'."""
    if isinstance(err, FileExistsError):
        what = "a file is in the way"
    else:
        what = IO_ERRNOS.get(err.errno) or err.strerror or type(err).__name__
    code = errno.errorcode.get(err.errno or -1)
    text = f"{what} ({code})" if code else what
    return f"{text} at {os.fspath(err.filename)}" if err.filename else text


def find_io_error(err: BaseException | None) -> OSError | None:
    """The OSError of `IO_ERRNOS` behind `err` (itself or along its cause/context chain), if any.

    Libraries wrap a failed write in their own exceptions (orbax, numpy's zip writer); the errno
    underneath says whether the disk, not the program, is at fault.
    """
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in IO_ERRNOS:
            return err
        found = _tensorstore_os_error(err)
        if found is not None:
            return found
        err = err.__cause__ or err.__context__
    return None


# tensorstore (under orbax) raises a ValueError for a failed write, its errno in the text:
# 'RESOURCE_EXHAUSTED: Error writing "w/0" in OCDBT database at local file "/r/ckpt.../": Failed
# writing: "/r/ckpt.../d/24cf": Failed to write ... No space left on device [os_error_code='28']'.
_TS_ERRNO = re.compile(r"os_error_code='(\d+)'")
_TS_PATHS = (re.compile(r'Failed writing: "([^"]+)"'), re.compile(r'local file "([^"]+)"'))


def _tensorstore_os_error(err: BaseException) -> OSError | None:
    """The OSError a tensorstore error message reports, if its errno is one of `IO_ERRNOS`."""
    text = str(err)
    code = _TS_ERRNO.search(text)
    if code is None or int(code.group(1)) not in IO_ERRNOS:
        return None
    paths = [found.group(1) for pattern in _TS_PATHS if (found := pattern.search(text))]
    number = int(code.group(1))
    return OSError(number, os.strerror(number), paths[0] if paths else None)
