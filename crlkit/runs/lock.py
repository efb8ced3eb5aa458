"""One writer per run directory: an advisory lock held for the run's whole life.

`RunDir.create` takes it (fresh runs and `--resume` alike) before it writes anything, and
`RunDir.close` lets it go. The lock is `flock` on `<run dir>/.lock`, whose content names the
holder (`pid 1234 on host node7`) so a second writer is refused with one line that says who
holds the run.

Why `fcntl.flock` and not a lock library: the kernel drops an flock lock when its holder dies,
however it dies (SIGKILL, OOM killer, a node's power), so a stale lock of a dead process is taken
over with no pid-liveness guessing, which would be wrong across hosts anyway (the lock file of a
run on a shared disk may have been written on another node). The lock file is never deleted, so
two writers can never lock two different inodes under the same name. `filelock`'s Unix lock is
this same call; its extra is Windows, where crlkit's multi-process runs do not go. On Linux NFS
clients flock is carried by NFS byte-range locks, so it also holds between nodes. Where `fcntl`
is missing (Windows) runs are not locked.

Multi-host runs: only process 0 locks (it owns the run's files; the other processes only add
their checkpoint shards).
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; runs are not locked there
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".lock"


class RunLocked(ValueError):
    """Another live process holds the run directory (one-line message naming it)."""


class RunLock:
    """An exclusive, non-blocking flock on `<directory>/.lock`; `release()` (or the holder's
    death) frees it."""

    def __init__(self, directory: str | os.PathLike):
        self.path = Path(directory) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock, or raise RunLocked naming the holder (OSError: no lock file possible)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise RunLocked(
                    f"run dir {self.path.parent} is in use by {holder}; wait for it to end or "
                    f"stop it (one writer per run dir)"
                ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Let the lock go (a no-op when not held). The file stays, naming the last holder."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.close(fd)  # closing the only descriptor drops the flock

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __del__(self) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    """'pid N on host H' as the holder wrote it, or a plain 'another process' while it writes."""
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text if text.startswith("pid ") else "another process"
