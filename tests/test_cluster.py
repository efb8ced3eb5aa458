"""Runs on a cluster: one writer per run dir (a lock that dies with its holder), output paths
probed before any work, a full or read-only disk ending in one line and exit 74, bad environment
variables naming themselves, the sbatch example's requeue on exit 75, and flat memory, threads
and file descriptors over a long run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
from conftest import TINY_ONLINE_FLAGS, xla_env

from crlkit import exit_codes, files
from crlkit.runs import rundir
from crlkit.runs.checkpoint import Checkpoints, RunDirError
from crlkit.runs.lock import LOCK_FILE
from crlkit.runs.rundir import RunDir

REPO = Path(__file__).resolve().parents[1]
CLI = "from crlkit.cli.main import cli; cli()"
ONE_DEVICE = xla_env(devices=1, compile_bound=True)
CONFIG = {"learner": {"depth": 4}, "online": {"steps": 1000}}
TINY_ONLINE = ["online", *TINY_ONLINE_FLAGS, "--eval-every", "0", "--quiet"]


def _crlkit(*args: str, env: dict | None = None, timeout: float = 300):
    return subprocess.run(
        [sys.executable, "-c", CLI, *args],
        env={**ONE_DEVICE, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _one_line(proc: subprocess.CompletedProcess) -> str:
    """The only line on stderr (asserted), e.g. 'Error: ...'."""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr[-3000:]
    return lines[0]


def _holder(directory: Path) -> subprocess.Popen:
    """Another process that takes the run dir's lock and then sleeps."""
    code = (
        f"from crlkit.runs.lock import RunLock; held = RunLock({str(directory)!r}).acquire(); "
        "print('locked', flush=True); import time; time.sleep(600)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


# ---------------------------------------------------------------------------------------------
# One writer per run directory


def test_a_locked_run_dir_is_refused_naming_the_holder_and_taken_over_when_it_dies(tmp_path):
    out = tmp_path / "run"
    RunDir.create(out, CONFIG).close()
    holder = _holder(out)
    try:
        for resume in (True, False):
            with pytest.raises(RunDirError) as err:
                RunDir.create(out, CONFIG, resume=resume)
            if resume:  # a fresh run into a used dir is refused before the lock is asked
                assert str(err.value) == (
                    f"run dir {out} is in use by pid {holder.pid} on host {os.uname().nodename};"
                    " wait for it to end or stop it (one writer per run dir)"
                )
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with RunDir.create(out, CONFIG, resume=True) as run:  # the dead holder's lock is stale
        assert (out / LOCK_FILE).read_text() == f"pid {os.getpid()} on host {os.uname().nodename}\n"
        with pytest.raises(RunDirError, match="is in use by pid"):
            RunDir.create(out, CONFIG, resume=True)  # one writer, even in the same process
        run.log(10, {"loss": 1.0})
    with RunDir.create(out, CONFIG, resume=True) as run:  # closed: free again
        assert [e["step"] for e in run.events] == [10]


def test_a_fresh_run_into_a_folder_with_only_a_stale_lock_starts(tmp_path):
    out = tmp_path / "run"
    holder = _holder(out.parent)  # any folder: the lock file alone is not a run
    holder.kill()
    holder.wait()
    out.mkdir()
    shutil.copy(out.parent / LOCK_FILE, out / LOCK_FILE)
    RunDir.create(out, CONFIG).close()
    assert json.loads((out / "config.json").read_text()) == CONFIG


@pytest.mark.slow  # two tiny online runs compile and train: ~1-2 min on 2 cores
def test_resume_of_a_running_run_is_refused_and_a_killed_runs_lock_is_taken_over(tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CLI,
            *TINY_ONLINE,
            "--steps",
            "1000000",
            "--log-every",
            "32",
            "--checkpoint-every",
            "64",
            "--out",
            str(out),
        ],
        env=ONE_DEVICE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 400
        while not rundir.list_checkpoints(out / "checkpoints"):
            assert first.poll() is None and time.time() < deadline, first.stderr.read()[-3000:]
            time.sleep(1)
        second = _crlkit(*TINY_ONLINE, "--steps", "1000000", "--resume", str(out))
        assert second.returncode == exit_codes.BAD_INPUT
        assert _one_line(second).startswith(f"Error: run dir {out} is in use by pid {first.pid}")
        assert first.poll() is None  # the first run goes on
    finally:
        first.kill()
        first.wait()
    saved = rundir.list_checkpoints(out / "checkpoints")[-1][0]
    third = _crlkit(*TINY_ONLINE, "--steps", str(saved + 64), "--resume", str(out))
    assert third.returncode == 0, third.stderr[-3000:]
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == saved + 64  # no event twice


# ---------------------------------------------------------------------------------------------
# Output paths checked up front; a disk that fails during a run


@pytest.fixture
def mount_tmpfs(tmp_path):
    """mount_tmpfs(size, read_only) -> a fresh tmpfs folder (needs root and mount rights)."""
    mounted: list[Path] = []

    def mount(size: str, read_only: bool = False) -> Path:
        point = tmp_path / f"mnt{len(mounted)}"
        point.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)],
            capture_output=True,
            text=True,
        )
        if proc.returncode:
            pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or 'not root'})")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


def test_probe_names_a_file_in_the_way_and_a_read_only_disk(tmp_path, mount_tmpfs):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError) as err:
        files.probe_writable_dir(blocker / "run")
    assert str(err.value) == (
        f"cannot write to {blocker / 'run'}: a path component is a file, not a folder (ENOTDIR) "
        f"at {blocker / 'run'}"
    )
    with pytest.raises(ValueError, match="a file is in the way"):
        files.probe_writable_dir(blocker)
    read_only = mount_tmpfs("1m", read_only=True)
    with pytest.raises(ValueError, match=r"read-only file system \(EROFS\)"):
        files.probe_writable_dir(read_only / "run")
    assert files.probe_writable_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert os.listdir(tmp_path / "a" / "b") == []  # the probe leaves nothing


@pytest.mark.parametrize("where", ["under a file", "read-only"])
def test_online_out_that_cannot_be_written_is_one_line_before_compiling(
    tmp_path, mount_tmpfs, where
):
    if where == "under a file":
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "run"
    else:
        out = mount_tmpfs("1m", read_only=True) / "run"
    t0 = time.perf_counter()
    proc = _crlkit(*TINY_ONLINE, "--steps", "64", "--out", str(out))
    assert proc.returncode == exit_codes.BAD_INPUT
    assert _one_line(proc).startswith(f"Error: cannot write to {out}: ")
    assert "compiling" not in proc.stderr
    assert time.perf_counter() - t0 < 60


def test_collect_out_that_cannot_be_written_fails_before_the_rollout(mount_tmpfs):
    out = mount_tmpfs("1m", read_only=True) / "data" / "d.npz"
    proc = _crlkit(
        "collect",
        "--env",
        "pointmaze-medium",
        "--steps",
        "2000000",
        "--out",
        str(out),
        "--quiet",
        timeout=120,
    )
    assert proc.returncode == exit_codes.BAD_INPUT
    assert _one_line(proc) == (
        f"Error: --out {out}: cannot write to {out.parent}: read-only file system (EROFS) at "
        f"{out.parent}"
    )


def _fill(folder: Path) -> None:
    """Write a file into `folder` until its disk is full (the run may fill it first: opening or
    closing the file fails then, as the last write does)."""
    try:
        with open(folder / "filler", "wb") as f:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
    except OSError:
        pass


@pytest.mark.slow  # a tiny online run until its disk is filled: ~1 min on 2 cores
def test_a_disk_filled_during_a_run_is_one_line_exit_74_and_keeps_the_last_checkpoint(
    mount_tmpfs,
):
    disk = mount_tmpfs("8m")
    out = disk / "run"
    run = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CLI,
            *TINY_ONLINE,
            "--steps",
            "1000000",
            "--log-every",
            "32",
            "--checkpoint-every",
            "64",
            "--out",
            str(out),
        ],
        env=ONE_DEVICE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 400
    while not rundir.list_checkpoints(out / "checkpoints"):
        assert run.poll() is None and time.time() < deadline, run.stderr.read()[-3000:]
        time.sleep(0.5)
    _fill(disk)
    _, err = run.communicate(timeout=300)
    assert run.returncode == exit_codes.IO_FAILED, err[-3000:]
    lines = err.strip().splitlines()  # crlkit's line only: no traceback of orbax's writes
    assert len(lines) == 1, err[-3000:]
    saved = rundir.list_checkpoints(out / "checkpoints")
    assert lines[0].startswith("Error: could not write the run: disk full (ENOSPC)"), lines
    assert lines[0].endswith(
        f"kept: last checkpoint at step {saved[-1][0]:,} in {out} (continue with --resume)"
    )
    assert not list((out / "checkpoints").glob(files.TMP_PREFIX + "*"))  # no torn temp left
    steps = [e["step"] for e in rundir.read_events(out / "metrics.jsonl")]
    assert steps == sorted(steps) and steps[-1] >= saved[-1][0]
    ckpts = Checkpoints(out / "checkpoints")
    try:  # the last checkpoint reads back whole
        assert ckpts.load_leaves(saved[-1][0], lambda path: True)
    finally:
        ckpts.close()


def test_late_callbacks_of_abandoned_writes_print_nothing_other_errors_print(monkeypatch):
    """tensorstore writes orbax abandoned after a failed save finish on a closed asyncio loop:
    that one RuntimeError is not printed; any other unraisable exception still is."""
    from crlkit.runs import checkpoint

    def unraisable(exc):
        return types.SimpleNamespace(
            exc_type=type(exc), exc_value=exc, exc_traceback=None, err_msg=None, object=None
        )

    printed = []
    monkeypatch.setattr(sys, "unraisablehook", lambda info: printed.append(info.exc_value))
    checkpoint._ignore_writes_finishing_after_their_loop()
    checkpoint._ignore_writes_finishing_after_their_loop()  # idempotent: one wrapper
    sys.unraisablehook(unraisable(RuntimeError("Event loop is closed")))
    assert printed == []
    other = ValueError("something else")
    sys.unraisablehook(unraisable(other))
    assert printed == [other]


def test_a_checkpoint_that_does_not_fit_is_disk_full_exit_74(mount_tmpfs):
    """tensorstore (under orbax) reports the failed write as a ValueError with the errno in its
    text; it is the same one line and exit code as an OSError."""
    import numpy as np

    out = mount_tmpfs("1m") / "run"
    with pytest.raises(exit_codes.RunStopped) as err:
        with RunDir.create(out, CONFIG) as run:
            run.save_checkpoint({"w": np.ones(1000, np.float32)}, 10)
            run.save_checkpoint({"w": np.random.default_rng(0).random(500_000)}, 20)  # 4 MB
    assert err.value.exit_code == exit_codes.IO_FAILED
    message = str(err.value)
    assert message.startswith("could not write the run: disk full (ENOSPC)"), message
    assert message.endswith(f"kept: last checkpoint at step 10 in {out} (continue with --resume)")


def test_summary_and_checkpoint_survive_a_failed_write(mount_tmpfs):
    """A write that fails for want of space leaves the old summary and checkpoint whole."""
    import numpy as np

    out = mount_tmpfs("1m") / "run"
    with pytest.raises(exit_codes.RunStopped) as err:
        with RunDir.create(out, CONFIG) as run:
            run.save_checkpoint({"w": np.ones(1000, np.float32)}, 10)
            run.write_summary({"env_steps": 10})
            run.write_summary({"env_steps": 20, "pad": list(range(400_000))})  # > 1 MB of JSON
    assert err.value.exit_code == exit_codes.IO_FAILED
    assert str(err.value) == (
        f"could not write the run: disk full (ENOSPC); kept: last checkpoint at step 10 in "
        f"{out} (continue with --resume)"
    )
    assert json.loads((out / "summary.json").read_text()) == {"env_steps": 10}
    ckpts = Checkpoints(out / "checkpoints")
    try:
        tree, step, _, _ = ckpts.load(10, {"w": np.zeros(1000, np.float32)})
    finally:
        ckpts.close()
    assert step == 10 and tree["w"].sum() == 1000
    assert not list(out.glob(files.TMP_PREFIX + "*"))


# ---------------------------------------------------------------------------------------------
# Environment variables and small input errors


@pytest.mark.parametrize(
    "env, want",
    [
        ({"JAX_NUM_PROCESSES": "abc"}, "Error: JAX_NUM_PROCESSES='abc' is not an integer >= 0"),
        (
            {"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "x"},
            "Error: JAX_PROCESS_ID='x' is not an integer >= 0",
        ),
        (
            {"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "5", "JAX_COORDINATOR_ADDRESS": "h:1"},
            "Error: --process-id 5 is outside [0, 2) for --num-processes 2 (from "
            "JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID)",
        ),
        (
            {"JAX_COORDINATOR_ADDRESS": "nohost"},
            "Error: JAX_COORDINATOR_ADDRESS='nohost' is not host:port (e.g. node0:1234)",
        ),
    ],
)
def test_bad_process_variables_name_themselves(env, want):
    proc = _crlkit(*TINY_ONLINE, "--steps", "32", env=env, timeout=120)
    assert proc.returncode == exit_codes.BAD_INPUT
    assert _one_line(proc) == want


def test_jax_platforms_naming_a_missing_backend_is_one_line():
    import jax

    if any(d.platform == "gpu" for d in jax.devices()):
        pytest.skip("this machine has a GPU")
    proc = _crlkit(*TINY_ONLINE, "--steps", "32", env={"JAX_PLATFORMS": "cuda"}, timeout=120)
    assert proc.returncode == exit_codes.BAD_INPUT
    assert _one_line(proc).startswith(
        "Error: JAX_PLATFORMS='cuda' names a backend this machine lacks ("
    )


def test_datasets_dir_that_is_a_file_names_the_variable(tmp_path):
    (tmp_path / "f").write_text("x")
    want = (
        f"Error: CRLKIT_DATASETS_DIR={tmp_path / 'f'}: not a folder (a file); point it at "
        "a folder of dataset cards (*.json) or unset it to use the shipped datasets/"
    )
    env = {"CRLKIT_DATASETS_DIR": str(tmp_path / "f")}
    proc = _crlkit("offline", "--dataset", "pointmaze-medium-navigate-sample", env=env)
    assert proc.returncode == exit_codes.BAD_INPUT
    assert _one_line(proc) == want
    proc = _crlkit("datasets", env=env)
    assert proc.returncode == exit_codes.BAD_INPUT
    assert _one_line(proc) == want


def test_a_text_file_given_as_npz_is_not_called_pickled(tmp_path):
    from crlkit.data import ogbench_io
    from crlkit.data.dataset import DatasetError

    text = tmp_path / "notes.npz"
    text.write_text("just text\n")
    with pytest.raises(DatasetError) as err:
        ogbench_io.read_npz(text)
    assert str(err.value) == (
        f"{text}: not a readable .npz: not an .npz file at all (that is a zip of NumPy arrays)"
    )


def test_bench_plan_with_an_unknown_env_prints_no_table_header():
    proc = _crlkit("bench", "plan", "--env", "nope", "--depths", "4", timeout=120)
    assert proc.returncode == exit_codes.BAD_INPUT
    assert proc.stdout == ""
    assert _one_line(proc).startswith("Error: unknown env 'nope'")


# ---------------------------------------------------------------------------------------------
# The sbatch example requeues on exit 75


def _fake_tools(bin_dir: Path, crlkit_code: int) -> Path:
    """`srun` that runs its command, `crlkit` that records its flags and exits `crlkit_code`,
    `scontrol` that records its arguments (one call a line)."""
    bin_dir.mkdir(exist_ok=True)
    log = bin_dir / "calls.log"
    tools = {
        "srun": '#!/bin/bash\nexec "$@"\n',
        "crlkit": f'#!/bin/bash\necho "crlkit $*" >> {log}\nexit {crlkit_code}\n',
        "scontrol": f'#!/bin/bash\necho "scontrol $*" >> {log}\n',
    }
    for name, text in tools.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    log.write_text("")
    return log


@pytest.mark.parametrize("code, requeued", [(75, True), (0, False), (2, False), (69, False)])
def test_sbatch_example_requeues_on_exit_75_and_resumes_an_existing_run(tmp_path, code, requeued):
    script = REPO / "docs" / "examples" / "crlkit.sbatch"
    run_dir = tmp_path / "runs" / "r"
    env = {
        "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        "SLURM_JOB_ID": "4242",
        "RUN_DIR": str(run_dir),
        "TRAIN_ARGS": "--env ant --depth 4",
    }
    for started_before in (False, True):
        if started_before:
            run_dir.mkdir(parents=True)
            (run_dir / "config.json").write_text("{}")
        log = _fake_tools(tmp_path / "bin", code)
        proc = subprocess.run(
            ["bash", str(script)], env=env, capture_output=True, text=True, cwd=tmp_path, timeout=30
        )
        assert proc.returncode == code, proc.stderr
        flags = f"--resume {run_dir}" if started_before else f"--env ant --depth 4 --out {run_dir}"
        calls = [f"crlkit online {flags}"] + (["scontrol requeue 4242"] if requeued else [])
        assert log.read_text().splitlines() == calls


def test_sbatch_example_is_valid_bash_and_matches_the_exit_code_table():
    script = (REPO / "docs" / "examples" / "crlkit.sbatch").read_text()
    assert subprocess.run(["bash", "-n", "-c", script]).returncode == 0
    assert f"PREEMPTED={exit_codes.PREEMPTED} " in script


# ---------------------------------------------------------------------------------------------
# A long run stays flat


def _usage(pid: int) -> dict[str, int]:
    """Resident memory (kB), threads and open file descriptors of a live process, from /proc."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    status = dict(line.split(":", 1) for line in lines)
    return {
        "rss_kb": int(status["VmRSS"].split()[0]),
        "threads": int(status["Threads"]),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
    }


def _least_usage(pid: int, samples: int = 20, every: float = 0.2) -> dict[str, int]:
    """The lowest of each `_usage` figure over a few seconds: a checkpoint save in flight holds
    extra threads and fds (orbax's event loops, tensorstore's files) that it gives back."""
    seen = []
    for _ in range(samples):
        seen.append(_usage(pid))
        time.sleep(every)
    return {key: min(s[key] for s in seen) for key in seen[0]}


def _wait_for_events(out: Path, count: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.time() + timeout
    while len(rundir.read_events(out / "metrics.jsonl")) < count:
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read()[-3000:]
        time.sleep(0.2)


@pytest.mark.slow  # one tiny online run with ~800 log events and ~400 checkpoints: ~2-3 min
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_memory_threads_and_file_descriptors_stay_flat_over_a_long_run(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CLI,
            *TINY_ONLINE,
            "--steps",
            "10000000",
            "--log-every",
            "32",
            "--checkpoint-every",
            "64",
            "--out",
            str(out),
        ],
        env=ONE_DEVICE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Warmed up: compiled, and orbax's checkpoint manager has saved (and deleted) many times.
        _wait_for_events(out, 200, proc, timeout=400)
        first = _least_usage(proc.pid)
        _wait_for_events(out, 800, proc, timeout=600)  # 600 more events, 300 more checkpoints
        last = _least_usage(proc.pid)
    finally:
        proc.kill()
        proc.wait()
    assert last["rss_kb"] - first["rss_kb"] < 30_000, (first, last)
    assert last["threads"] <= first["threads"] + 2, (first, last)
    assert last["fds"] <= first["fds"] + 2, (first, last)
