"""Where a sweep's cells run: inline (this process), local (N cell processes) or slurm (submitit).

A launcher takes the cells to run (`CellTask`s) and yields `(task, outcome)` as each ends. The
local and slurm launchers start one process per cell (`python -m crlkit.experiments.cell DIR
CELL`, cell.py), which runs the cell exactly as the inline launcher does, so the cell records,
failed.json and resume do not depend on the launcher. A cell process that exits with PREEMPTED (75)
left its cell `running` and is started again (requeued) up to `requeues` times; it resumes from
the cell's newest checkpoint. Each cell's output goes to DIR/logs/<cell>.log.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from crlkit import exit_codes, files
from crlkit.config import option_field
from crlkit.experiments.cell import CPUS_ENV
from crlkit.experiments.grid import SweepConfig, SweepError
from crlkit.experiments.sweep import (
    FAILED_FILE,
    LOGS_DIR,
    CellTask,
    Launcher,
    record_path,
    run_inline,
)
from crlkit.runs import rundir

SLURM_INSTALL = "pip install 'crlkit[slurm]'"
DEFAULT_REQUEUES = 3
POLL_SECONDS = 0.2


class LauncherError(SweepError):
    """A launcher that cannot run here (missing extra, no GPUs for --jobs, bad Slurm options)."""


# ---------------------------------------------------------------------------------------------
# What a finished cell process left on disk


def log_path(task: CellTask) -> Path:
    """DIR/logs/<cell>.log: the output of the cell's processes (appended across attempts)."""
    return task.path.parent / LOGS_DIR / f"{task.path.name}.log"


def describe_exit(code: int | None) -> str:
    """'preempted (exit code 75)', 'killed by SIGKILL', ... for a cell process's exit status."""
    if code is None:
        return "no exit status"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    known = {
        exit_codes.PREEMPTED: "preempted",
        exit_codes.INTERRUPTED: "interrupted",
        exit_codes.BAD_INPUT: "bad input",
    }
    return f"{known.get(code, 'ended')} (exit code {code})"


def outcome_from_disk(task: CellTask, code: int | None, seconds: float) -> dict[str, Any]:
    """The outcome of a cell process as `run_cell` would have returned it, read from its record;
    'stopped' (resumable) when the process ended without finishing or failing the cell."""
    record = files.read_json(record_path(task.path)) or {}
    status = record.get("status")
    if code == exit_codes.OK and status == "done":
        summary = files.read_json(task.path / rundir.SUMMARY_FILE) or {}
        return {"status": "done", "summary": summary, "seconds": seconds}
    if code == exit_codes.DIVERGED and status == "failed":
        reason = (files.read_json(task.path / FAILED_FILE) or {}).get("reason", "unknown")
        return {"status": "failed", "reason": reason, "seconds": seconds}
    return {"status": "stopped", "reason": f"{describe_exit(code)}; log: {log_path(task)}"}


def _cell_command(task: CellTask) -> list[str]:
    out = str(task.path.parent.resolve())
    return [sys.executable, "-m", "crlkit.experiments.cell", out, task.path.name]


# ---------------------------------------------------------------------------------------------
# local: N cell processes at once on this machine


def visible_gpus() -> list[str]:
    """The GPUs a cell process could get: CUDA_VISIBLE_DEVICES if set, else `nvidia-smi -L`."""
    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    if given is not None:
        return [d.strip() for d in given.split(",") if d.strip() and d.strip() != "-1"]
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        listing = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(listing.splitlines()) if line.startswith("GPU ")]


def usable_cpus() -> list[int]:
    """The CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def local_slots(jobs: int, gpus: list[str], cpus: list[int]) -> list[dict[str, str]]:
    """The environment of each of `jobs` process slots: its own GPUs, or its share of the cores.

    On a GPU machine every slot gets len(gpus) // jobs GPUs (CUDA_VISIBLE_DEVICES); --jobs above
    the GPU count is an error (one process per GPU at most). On a CPU every slot gets
    len(cpus) // jobs cores (at least one; shared round-robin when --jobs exceeds the cores).
    """
    if gpus:
        if jobs > len(gpus):
            raise LauncherError(
                f"--jobs {jobs} is more than the {len(gpus)} visible GPU(s) "
                f"({','.join(gpus)}); each cell process needs a GPU of its own"
            )
        per = len(gpus) // jobs
        return [
            {"CUDA_VISIBLE_DEVICES": ",".join(gpus[i * per : (i + 1) * per])} for i in range(jobs)
        ]
    per = max(1, len(cpus) // jobs)
    slots = []
    for i in range(jobs):
        mine = [cpus[(i * per + k) % len(cpus)] for k in range(per)]
        slots.append({CPUS_ENV: ",".join(map(str, mine)), "OMP_NUM_THREADS": str(per)})
    return slots


def _slot_text(slot: dict[str, str]) -> str:
    if "CUDA_VISIBLE_DEVICES" in slot:
        return f"GPU {slot['CUDA_VISIBLE_DEVICES']}"
    return f"CPU cores {slot[CPUS_ENV]}"


@dataclasses.dataclass
class LocalLauncher:
    """Runs up to len(slots) cell processes at once; a preempted cell (exit 75) is run again."""

    slots: list[dict[str, str]]
    requeues: int = DEFAULT_REQUEUES

    def __call__(self, tasks: list[CellTask], echo: Callable[[str], None]) -> Iterator:
        queue = collections.deque(tasks)
        free = list(range(len(self.slots)))
        running: dict[int, tuple[subprocess.Popen, CellTask, float]] = {}
        requeued: collections.Counter = collections.Counter()
        try:
            while queue or running:
                while queue and free:
                    slot, task = free.pop(0), queue.popleft()
                    running[slot] = (self._start(task, slot, echo), task, time.perf_counter())
                for slot, (proc, task, t0) in list(running.items()):
                    code = proc.poll()
                    if code is None:
                        continue
                    del running[slot]
                    free.append(slot)
                    if code == exit_codes.PREEMPTED and requeued[task.path] < self.requeues:
                        requeued[task.path] += 1
                        echo(f"{task.head}: preempted; started again (resumes)")
                        queue.appendleft(dataclasses.replace(task, resume=True))
                        continue
                    yield task, outcome_from_disk(task, code, time.perf_counter() - t0)
                time.sleep(POLL_SECONDS)
        finally:
            _stop_all([proc for proc, _, _ in running.values()])

    def _start(self, task: CellTask, slot: int, echo: Callable[[str], None]) -> subprocess.Popen:
        log = log_path(task)
        log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.slots[slot]}
        with open(log, "ab") as sink:
            proc = subprocess.Popen(
                _cell_command(task), stdout=sink, stderr=subprocess.STDOUT, env=env
            )
        verb = "resuming" if task.resume else "starting"
        echo(
            f"{task.head}: {verb} in process {proc.pid} ({_slot_text(self.slots[slot])}); log {log}"
        )
        return proc


def _stop_all(procs: list[subprocess.Popen]) -> None:
    """SIGTERM to cell processes still running (they stop resumable, exit 75), then wait."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()


# ---------------------------------------------------------------------------------------------
# slurm: one job array per sweep, through submitit


@dataclasses.dataclass(frozen=True)
class SlurmConfig:
    """Slurm settings of `--launcher slurm` (flags --slurm-<name>, or keys of a TOML file)."""

    config: str = option_field(
        "", "TOML file with any of the settings below as keys (flags given override it)."
    )
    partition: str = option_field("", "Partition (sbatch --partition); empty: the default.")
    account: str = option_field("", "Account to charge (sbatch --account); empty: the default.")
    qos: str = option_field("", "Quality of service (sbatch --qos); empty: the default.")
    time: int = option_field(1440, "Time limit of each cell's job in minutes (sbatch --time).")
    gpus: int = option_field(1, "GPUs per cell (sbatch --gpus-per-node).")
    cpus: int = option_field(8, "CPU cores per cell (sbatch --cpus-per-task).")
    mem_gb: int = option_field(64, "Memory per cell in GB (sbatch --mem).")
    parallel: int = option_field(256, "Cells of the array running at once (sbatch --array=%N).")
    requeues: int = option_field(
        DEFAULT_REQUEUES, "Times a preempted cell (exit code 75) is submitted again."
    )
    cluster: str = option_field(
        "slurm",
        "slurm: submit with sbatch; local: submitit's local executor runs the jobs as "
        "processes here (tries the Slurm path without a cluster).",
        ("slurm", "local"),
    )

    def __post_init__(self) -> None:
        for name in ("time", "gpus", "cpus", "mem_gb", "parallel", "requeues"):
            value = getattr(self, name)
            low = 0 if name in ("gpus", "requeues") else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise LauncherError(
                    f"--slurm-{name.replace('_', '-')} must be an integer >= {low}, got {value!r}"
                )
        if self.cluster not in ("slurm", "local"):
            raise LauncherError(f"unknown --slurm-cluster {self.cluster!r}; valid: slurm, local")

    def executor_parameters(self) -> dict[str, Any]:
        """submitit's AutoExecutor parameters (slurm_* ones are ignored by the local executor)."""
        params: dict[str, Any] = {
            "timeout_min": self.time,
            "gpus_per_node": self.gpus,
            "cpus_per_task": self.cpus,
            "mem_gb": self.mem_gb,
            "slurm_array_parallelism": self.parallel,
            "name": "crlkit-sweep",
        }
        for key in ("partition", "account", "qos"):
            if getattr(self, key):
                params[f"slurm_{key}"] = getattr(self, key)
        return params


def _toml_loader():
    try:
        import tomllib  # Python 3.11+
    except ModuleNotFoundError:
        try:
            import tomli as tomllib  # the same parser on 3.10, where it is installed
        except ModuleNotFoundError:
            raise LauncherError(
                "reading --slurm-config needs Python 3.11+ or the tomli package (pip install "
                "tomli); or give the settings as --slurm-* flags"
            ) from None
    return tomllib


def read_slurm_file(path: str) -> dict[str, Any]:
    """The settings of a Slurm option file, checked key by key (a one-line LauncherError)."""
    tomllib = _toml_loader()
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise LauncherError(f"cannot read --slurm-config {path}: {err.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise LauncherError(
            f"--slurm-config {path} does not parse{_bad_line(text, err)}: "
            f"{str(err).splitlines()[0]}"
        ) from None
    fields = {f.name: f for f in dataclasses.fields(SlurmConfig) if f.name != "config"}
    for key, value in data.items():
        if key not in fields:
            raise LauncherError(
                f"--slurm-config {path}: unknown key {key!r}; valid: {', '.join(fields)}"
            )
        want = int if fields[key].type in (int, "int") else str
        if isinstance(value, bool) or not isinstance(value, want):
            raise LauncherError(
                f"--slurm-config {path}: key {key!r} must be "
                f"{'an integer' if want is int else 'a string'}, got {value!r}"
            )
    return data


def _bad_line(text: str, err: Exception) -> str:
    """' at line 3 (key 'time')' for a TOML error that names a line."""
    found = re.search(r"at line (\d+)", str(err))
    line = int(found.group(1)) if found else 0
    if not line or line > len(text.splitlines()):
        return ""
    key = text.splitlines()[line - 1].split("=")[0].strip()
    return f" at line {line}" + (f" (key {key!r})" if key else "")


def _submitit():
    try:
        import submitit
    except ModuleNotFoundError:
        raise LauncherError(f"--launcher slurm needs submitit: {SLURM_INSTALL}") from None
    return submitit


def sbatch_script(cfg: SlurmConfig, folder: str | Path, cells: int) -> str:
    """The sbatch script submitit writes for a sweep's job array of `cells` cells (rendered
    here without submitting: submitit's own template, so it is what a cluster receives)."""
    _submitit()
    from submitit.slurm import slurm

    params = {
        "time": cfg.time,
        "gpus_per_node": cfg.gpus,
        "cpus_per_task": cfg.cpus,
        "mem": f"{cfg.mem_gb}GB",
        "array_parallelism": cfg.parallel,
        "job_name": "crlkit-sweep",
    }
    params.update({k: getattr(cfg, k) for k in ("partition", "account", "qos") if getattr(cfg, k)})
    command = " ".join([sys.executable, "-u -m submitit.core._submit", str(folder)])
    return slurm._make_sbatch_string(command=command, folder=str(folder), map_count=cells, **params)


_CHILD: dict[str, subprocess.Popen] = {}


class CellJob:
    """What each array task runs: the cell process, its output appended to DIR/logs/<cell>.log.

    Returns the cell process's exit code. On Slurm's timeout signal submitit calls `checkpoint`:
    the cell process is stopped (it stays resumable) and the same cell is requeued.
    """

    def __call__(self, sweep_dir: str, cell: str) -> int:
        log = Path(sweep_dir) / LOGS_DIR / f"{cell}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "crlkit.experiments.cell", sweep_dir, cell]
        with open(log, "ab") as sink:
            proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
            _CHILD["cell"] = proc
            return proc.wait()

    def checkpoint(self, sweep_dir: str, cell: str):
        proc = _CHILD.get("cell")
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait()
        return _submitit().helpers.DelayedSubmission(CellJob(), sweep_dir, cell)


@dataclasses.dataclass
class SlurmLauncher:
    """Submits the cells as one job array (submitit) and waits for it; a preempted cell (exit 75)
    is submitted again at once, as a job of its own."""

    cfg: SlurmConfig
    folder: Path

    def __call__(self, tasks: list[CellTask], echo: Callable[[str], None]) -> Iterator:
        if not tasks:
            return
        submitit = _submitit()
        cluster = None if self.cfg.cluster == "slurm" else "local"
        if cluster is None and shutil.which("sbatch") is None:
            raise LauncherError(
                "--launcher slurm: no sbatch here (not a Slurm login node); "
                "--slurm-cluster local runs the jobs on this machine"
            )
        executor = submitit.AutoExecutor(folder=self.folder, cluster=cluster)
        executor.update_parameters(**self.cfg.executor_parameters())
        dirs = [str(t.path.parent.resolve()) for t in tasks]
        jobs = executor.map_array(CellJob(), dirs, [t.path.name for t in tasks])
        echo(
            f"submitted {len(jobs)} cell(s) as job array {jobs[0].job_id.split('_')[0]} "
            f"({self.cfg.cluster}); submitit logs in {self.folder}"
        )
        active = list(zip(jobs, tasks, strict=True))
        requeued: collections.Counter = collections.Counter()
        while active:
            waiting = []
            for job, task in active:
                if not job.done():
                    waiting.append((job, task))
                    continue
                code, problem = _job_code(job)
                if problem:
                    yield task, {"status": "stopped", "reason": problem}
                elif code == exit_codes.PREEMPTED and requeued[task.path] < self.cfg.requeues:
                    requeued[task.path] += 1
                    again = executor.submit(
                        CellJob(), str(task.path.parent.resolve()), task.path.name
                    )
                    echo(f"{task.head}: preempted; submitted again as job {again.job_id} (resumes)")
                    waiting.append((again, dataclasses.replace(task, resume=True)))
                else:
                    yield task, outcome_from_disk(task, code, _record_seconds(task))
            active = waiting
            time.sleep(1.0 if active else 0)


def _job_code(job) -> tuple[int | None, str]:
    """(the cell process's exit code, '') or (None, why the job itself failed)."""
    try:
        return job.result(), ""
    except Exception as err:  # the job failed as a job (cancelled, node lost, ...)
        return None, f"job {job.job_id}: {str(err).strip().splitlines()[-1]}"


def _record_seconds(task: CellTask) -> float:
    record = files.read_json(record_path(task.path)) or {}
    started, ended = record.get("started"), record.get("ended")
    return float(ended - started) if started and ended else 0.0


# ---------------------------------------------------------------------------------------------
# Choosing one


def make_launcher(
    sweep: SweepConfig, slurm: SlurmConfig | None = None, echo: Callable[[str], None] = print
) -> tuple[str, Launcher]:
    """(name, launcher) for the sweep's --launcher and --jobs ('auto' resolved here)."""
    name = sweep.launcher
    gpus = visible_gpus() if name in ("auto", "local") else []
    if name == "auto":
        name = "local" if len(gpus) > 1 else "inline"
    if name == "inline":
        return name, run_inline
    if name == "local":
        jobs = sweep.jobs if sweep.launcher == "local" else len(gpus)
        cpus = usable_cpus()
        if not gpus and jobs > len(cpus):
            echo(f"--jobs {jobs} on {len(cpus)} CPU core(s): cell processes share cores")
        return name, LocalLauncher(local_slots(jobs, gpus, cpus))
    _submitit()
    cfg = slurm or SlurmConfig()
    return name, SlurmLauncher(cfg, Path(sweep.out).resolve() / LOGS_DIR / "slurm")
