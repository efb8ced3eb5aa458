"""Output files of `crlkit render`: suffix and writability checks (written via crlkit.files)."""

from __future__ import annotations

import os
import tempfile
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
