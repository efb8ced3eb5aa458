"""Run directories shared by `crlkit online` and `crlkit offline`: config, logs, checkpoints.

```
runs/<name>-d<depth>-s<seed>-<YYYYmmdd-HHMMSS>/
  config.json         the run's config (frozen dataclasses as JSON); resume compares against it
  metrics.jsonl       one JSON object per log event: {"step": ..., "time": ..., <metrics>}
  metrics.csv         the same events as a table; columns grow as new metrics appear
  summary.json        final numbers, written by the loop at the end
  checkpoints/        ckpt_<step, 12 digits>/ (orbax: items state, replay, meta), the last K kept
                      (runs/checkpoint.py)
```

In a multi-host run every process opens the RunDir (all of them take part in checkpoints), but
only process 0 (`primary`) writes config, logs and summary.

Every file is written atomically (`crlkit.files`), so a run killed at any instant (even SIGKILL)
leaves each file either at its old or at its new content. See docs/runs.md.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax

from crlkit import files
from crlkit.exit_codes import IO_FAILED, RunStopped
from crlkit.runs.checkpoint import (
    Checkpoints,
    CorruptCheckpoint,
    Pytree,
    Restored,
    RunDirError,
    list_checkpoints,
)
from crlkit.runs.lock import LOCK_FILE, RunLock
from crlkit.runs.sinks import TrackingConfig, open_sinks

CONFIG_FILE = "config.json"
METRICS_JSONL = "metrics.jsonl"
METRICS_CSV = "metrics.csv"
SUMMARY_FILE = "summary.json"
CHECKPOINT_DIR = "checkpoints"

__all__ = [
    "RunDir",
    "RunDirError",
    "CorruptCheckpoint",
    "Restored",
    "list_checkpoints",
    "read_run_config",
    "read_events",
]


def default_out_dir(name: str, depth: int, seed: int, root: str | os.PathLike = "runs") -> Path:
    """A fresh `runs/<name>-d<depth>-s<seed>-<YYYYmmdd-HHMMSS>` (suffixed -2, -3... if taken)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "run"
    base = Path(root) / f"{safe}-d{depth}-s{seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def read_run_config(path: str | os.PathLike) -> dict[str, Any]:
    """The config.json of the run directory `path` (the one place run configs are read).

    Raises RunDirError (one line) when `path` is not a run directory or the file is unreadable.
    """
    config_file = Path(path) / CONFIG_FILE
    if not config_file.is_file():
        raise RunDirError(f"{path}: not a crlkit run directory (no {CONFIG_FILE})")
    try:
        data = json.loads(config_file.read_text())
    except (OSError, ValueError) as err:
        raise RunDirError(f"{path}: unreadable {CONFIG_FILE} ({err})") from None
    if not isinstance(data, dict):
        raise RunDirError(f"{path}: {CONFIG_FILE} is not a JSON object")
    return data


def config_diff(stored: Mapping, current: Mapping, ignore: Iterable[str] = ()) -> list[str]:
    """Dotted names of the fields that differ, each as 'name (stored X, now Y)'."""
    a = files.flatten_dict(files.to_jsonable(stored))
    b = files.flatten_dict(files.to_jsonable(current))
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


class RunDir:
    """One run's folder: config.json, metrics.jsonl/csv, summary.json, checkpoints/.

    Create with `RunDir.create(...)`; call `restore(template)` when resuming, `log(step, metrics)`
    at each log event, `save_checkpoint(tree, step)` every checkpoint interval,
    `write_summary(...)` at the end and `close()` (or use it as a context manager).
    """

    def __init__(self, path: Path, config: dict, keep_checkpoints: int, sinks: list):
        self.path = path
        self.primary = jax.process_index() == 0
        self.config = config
        self.keep_checkpoints = keep_checkpoints
        self.checkpoint_dir = path / CHECKPOINT_DIR
        self.checkpoints = Checkpoints(self.checkpoint_dir, keep_checkpoints)
        self._stored_config: dict | None = None  # config.json before a resume rewrote it
        self._sinks = sinks
        self._events: list[dict] = []
        self._columns: list[str] = []
        self._lock: RunLock | None = None

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        config: Any,
        *,
        resume: bool = False,
        ignore_on_resume: Sequence[str] = (),
        keep_checkpoints: int = 3,
        tracking: TrackingConfig | None = None,
    ) -> RunDir:
        """Open a new run dir, or an existing one to resume.

        Args:
          path: the run folder (`--out`); see `default_out_dir`.
          config: a frozen dataclass, or a mapping of them (e.g. {"learner": ..., "online": ...}).
          resume: False: `path` must not exist or be empty. True: it must hold a config.json
            equal to `config` except for the dotted names in `ignore_on_resume`
            (e.g. "online.steps").
          keep_checkpoints: how many of the newest checkpoints to keep (>= 1).
          tracking: the optional TensorBoard / W&B sinks and the run's name, tags and group there
            (default: none).
        """
        path = Path(path)
        if keep_checkpoints < 1:
            raise RunDirError(f"keep_checkpoints must be >= 1, got {keep_checkpoints}")
        config_dict = files.to_jsonable(config)
        primary = jax.process_index() == 0
        stored = None
        if resume:
            stored = _check_resumable(path, config_dict, ignore_on_resume)
        elif primary and _in_use(path):
            raise RunDirError(
                f"run dir {path} already exists; resume it with --resume or choose another --out"
            )
        if not primary:  # process 0 owns the files; the others only checkpoint
            run = cls(path, config_dict, keep_checkpoints, [])
            run._events = read_events(path / METRICS_JSONL) if resume else []
            return run
        lock = _take_lock(path)  # before anything is written; held until close()
        try:
            if not resume and _in_use(path):  # another fresh run won the race
                raise RunDirError(f"run dir {path} already exists; choose another --out")
            run = cls._open_files(
                path, config_dict, resume, keep_checkpoints, tracking or TrackingConfig(), stored
            )
        except BaseException as err:
            lock.release()
            failed = files.find_io_error(err)
            if failed is None:
                raise
            raise RunStopped(
                f"could not write the run dir: {files.describe_os_error(failed)}", IO_FAILED
            ) from None
        run._lock = lock
        return run

    @classmethod
    def _open_files(cls, path, config_dict, resume, keep_checkpoints, tracking, stored) -> RunDir:
        """Process 0's part of `create` once the lock is held: folders, config.json, sinks."""
        (path / CHECKPOINT_DIR).mkdir(exist_ok=True)
        files.remove_temp_files(path)
        files.atomic_write_json(path / CONFIG_FILE, config_dict)
        sinks = open_sinks(path, config_dict, tracking)
        run = cls(path, config_dict, keep_checkpoints, sinks)
        run._stored_config = stored
        if resume:
            run._events = read_events(path / METRICS_JSONL)
            run._rewrite_logs()
        return run

    # -- logging ------------------------------------------------------------------------------

    def log(self, step: int, metrics: Mapping[str, Any]) -> dict:
        """Record one event (scalars only) in metrics.jsonl, metrics.csv and the optional sinks."""
        event = {"step": int(step), "time": round(time.time(), 3)}
        if not self.primary:
            return event
        for name, value in metrics.items():
            value = files.to_jsonable(value)
            if isinstance(value, (list, dict)):
                raise ValueError(f"metric {name!r} is not a scalar: {value!r}")
            event[str(name)] = value
        self._events.append(event)
        with open(self.path / METRICS_JSONL, "a") as f:
            f.write(json.dumps(event) + "\n")
        new_columns = [k for k in event if k not in self._columns]
        if new_columns:  # the header grows: rewrite the whole table atomically
            self._columns += new_columns
            files.atomic_write_bytes(self.path / METRICS_CSV, self._csv_text(self._events))
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
        if self.primary:
            files.atomic_write_json(self.path / SUMMARY_FILE, summary)

    # -- checkpoints --------------------------------------------------------------------------

    def save_checkpoint(
        self, tree: Pytree, step: int, meta: Mapping | None = None, replay: Pytree | None = None
    ) -> Path:
        """Save `tree` (and the optional `replay` buffer, a separate item) at `step`; only the
        newest `keep_checkpoints` stay (every process calls it in a multi-host run)."""
        return self.checkpoints.save(step, tree, meta, replay)

    def restore(
        self,
        template: Pytree,
        *,
        replay: Pytree | None = None,
        echo: Callable[[str], None] | None = None,
        start_over: bool = False,
        max_step: int | None = None,
    ) -> Restored | None:
        """Load the newest readable checkpoint into `template` (+ `replay`, see
        `Checkpoints.load`) -> Restored(tree, step, meta, replay), or None with no checkpoint.

        Log events after the restored step (written before the run died, and about to be
        repeated) are dropped; with no checkpoint all events are dropped, since the run restarts.
        An unreadable checkpoint is renamed to <name>.corrupt (never taken again) and the next
        older one is tried, saying so in one line through `echo`; when every checkpoint is
        unreadable the resume is refused (RunDirError) unless `start_over`. A checkpoint beyond
        `max_step` (the budget, in checkpoint steps) refuses the resume and puts the run's
        config.json back; one that does not fit `template` raises RunDirError.
        """
        echo = echo or (lambda line: print(line, file=sys.stderr))
        restored, bad = None, []
        for step in reversed(self.checkpoints.steps()):
            try:
                restored = self.checkpoints.load(step, template, replay)
                break
            except CorruptCheckpoint as err:
                bad.append(self.checkpoints.path(step).name)
                if self.primary:
                    self.checkpoints.set_aside(step)
                echo(f"{err}; set aside as {bad[-1]}.corrupt, trying an older one")
        if restored is None and bad and not start_over:
            raise RunDirError(
                f"cannot resume {self.path}: every checkpoint is unreadable ({', '.join(bad)}, "
                "now *.corrupt); --start-over starts the run again from step 0"
            )
        if restored is not None and max_step is not None and restored.step > max_step:
            if self.primary and self._stored_config is not None:
                files.atomic_write_json(self.path / CONFIG_FILE, self._stored_config)
            raise RunDirError(
                f"cannot resume {self.path} with a budget of {max_step:,} steps: it is already "
                f"at step {restored.step:,}; give --steps of at least {restored.step:,}"
            )
        keep_until = restored.step if restored else -1
        self._events = [e for e in self._events if e["step"] <= keep_until]
        if self.primary:
            self._rewrite_logs()
        return restored

    # -- files --------------------------------------------------------------------------------

    def _rewrite_logs(self) -> None:
        """Rewrite metrics.jsonl and metrics.csv from the in-memory events, atomically."""
        self._columns = []
        for e in self._events:
            self._columns += [k for k in e if k not in self._columns]
        text = "".join(json.dumps(e) + "\n" for e in self._events)
        files.atomic_write_bytes(self.path / METRICS_JSONL, text.encode())
        files.atomic_write_bytes(self.path / METRICS_CSV, self._csv_text(self._events))

    def _csv_text(self, events: list[dict], header: bool = True) -> bytes:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self._columns, restval="", lineterminator="\n")
        if header:
            writer.writeheader()
        writer.writerows(events)
        return buf.getvalue().encode()

    def close(self) -> None:
        """Flush and close the optional sinks; let the run dir's lock go."""
        for sink in self._sinks:
            sink.close()
        self._sinks = []
        self.checkpoints.close()
        if self._lock is not None:
            self._lock.release()

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        """Close; a failed write (disk full, read-only, no permission) inside the block becomes
        a one-line RunStopped (exit IO_FAILED) saying what the run dir still holds."""
        self.close()
        failed = files.find_io_error(exc)
        if failed is not None and not isinstance(exc, RunStopped):
            raise RunStopped(
                f"could not write the run: {files.describe_os_error(failed)}; kept: {self.kept()}",
                IO_FAILED,
            ) from None

    def kept(self) -> str:
        """What a stopped run leaves to resume from: 'checkpoint at step N in DIR' or none."""
        saved = [step for step, _ in list_checkpoints(self.checkpoint_dir)]
        if not saved:
            return f"no checkpoint yet in {self.path} (a --resume starts over)"
        return f"last checkpoint at step {saved[-1]:,} in {self.path} (continue with --resume)"


def _in_use(path: Path) -> bool:
    """True when `path` is a file or a folder holding more than a lock file and write temps."""
    if not path.exists():
        return False
    if not path.is_dir():
        return True
    ours = lambda name: name == LOCK_FILE or name.startswith(files.TMP_PREFIX)
    return any(not ours(p.name) for p in path.iterdir())


def _take_lock(path: Path) -> RunLock:
    """Create `path`, prove it writable and lock it: one-line RunDirError when it cannot be
    written (a file in the way, read-only, full) or another process holds it."""
    try:
        files.probe_writable_dir(path)
        return RunLock(path).acquire()
    except (ValueError, OSError) as err:
        if isinstance(err, OSError):
            err = f"cannot write to {path}: {files.describe_os_error(err)}"
        raise RunDirError(str(err)) from None


def _check_resumable(path: Path, config: dict, ignore: Sequence[str]) -> dict:
    """The stored config; a one-line RunDirError unless `path` holds a run with the same one."""
    if not (path / CONFIG_FILE).is_file():
        raise RunDirError(f"cannot resume {path}: no {CONFIG_FILE} there (not a crlkit run dir)")
    try:
        stored = read_run_config(path)
    except RunDirError as err:
        raise RunDirError(f"cannot resume {err}") from None
    diff = config_diff(stored, config, ignore)
    if diff:
        raise RunDirError(
            f"cannot resume {path}: its config differs in {len(diff)} field(s): {'; '.join(diff)}"
        )
    return stored


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
