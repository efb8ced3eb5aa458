"""Output files of `crlkit render`: suffix and writability checks, atomic replacement."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

SUFFIXES = (".mp4", ".gif", ".png")


class RenderError(ValueError):
    """A user-caused render problem (bad output, run dir, task, option), said in one line."""


def check_output(path: str | os.PathLike) -> Path:
    """`path` as a Path once its suffix is known and its folder takes new files; else RenderError.

    Checked by creating (and removing) a temporary file there, since permission bits say
    nothing for root and a full or read-only file system only shows on a write.
    """
    out = Path(path)
    if out.suffix.lower() not in SUFFIXES:
        raise RenderError(
            f"output {str(out)!r} has suffix {out.suffix or '(none)'!r}; valid: "
            f"{', '.join(SUFFIXES)}"
        )
    if out.is_dir():
        raise RenderError(f"output {str(out)!r} is a directory; give a file name")
    folder = out.parent
    try:
        handle, probe = tempfile.mkstemp(dir=folder, prefix=f".{out.name}.", suffix=".probe")
    except OSError as err:
        raise RenderError(f"cannot write {str(out)!r}: {err.strerror or err}") from None
    os.close(handle)
    os.unlink(probe)
    return out


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yields a temporary path beside `path` (same suffix, for encoders that read it); on success
    it replaces `path`, on any error it is removed, so no partial file is ever left at `path`."""
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(handle)
    try:
        yield Path(temp)
        # mkstemp makes the file private (0600); give it the mode a plain open() would have.
        os.chmod(temp, 0o666 & ~_umask())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def _umask() -> int:
    """The process umask (reading it means setting it; set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
