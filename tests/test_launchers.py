"""`crlkit sweep --launcher local|slurm`: cells in their own processes (two at once locally, a
job array through submitit's local executor), with the same records, failures, resume and report
as the inline launcher; the generated sbatch script; the launchers' bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import TINY_SWEEP_ONLINE_FLAGS, xla_env
from crlkit.cli.main import cli

from crlkit.experiments import launchers, report, sweep
from crlkit.runs import rundir

DATASET = "pointmaze-medium-navigate-sample"
# Tiny cells of both regimes: pointmaze, 16 wide, a few dozen steps each.
TINY = [
    "--env",
    "pointmaze-medium",
    "--dataset",
    DATASET,
    "--width",
    "16",
    "--quiet",
    *TINY_SWEEP_ONLINE_FLAGS,
    "--offline-steps",
    "40",
    "--offline-log-every",
    "20",
    "--offline-eval-episodes",
    "1",
]
# Tiny offline cells long enough to be stopped mid-run (checkpoints every 20 SGD steps).
STOPPABLE = [
    "--dataset",
    DATASET,
    "--regimes",
    "offline",
    "--width",
    "16",
    "--offline-steps",
    "400",
    "--offline-log-every",
    "20",
    "--offline-checkpoint-every",
    "20",
    "--offline-eval-every",
    "0",
    "--offline-eval-episodes",
    "1",
    "--no-report",
]


@pytest.fixture(autouse=True)
def _cells_compile_fast(monkeypatch):
    """Cell processes run tiny budgets no test judges: they compile as the fast suite does."""
    monkeypatch.setenv("XLA_FLAGS", xla_env(compile_bound=True)["XLA_FLAGS"])


def _sweep(args: list[str]):
    return CliRunner().invoke(cli, ["sweep", *args], catch_exceptions=False)


def _record(out: Path, name: str) -> dict:
    return json.loads((out / sweep.CELLS_DIR / f"{name}.json").read_text())


def _table_rows(path: Path) -> list[list[str]]:
    """The grid table's and the runs table's rows of report.md without their wall-clock and
    throughput columns (those differ between any two runs)."""
    rows = []
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] in ("online", "offline"):
            rows.append(cells[:9])  # regime .. params
        elif cells[0].startswith(("online-", "offline-")):
            rows.append(cells[:5])  # run, status, steps, success, fresh-goal success
    return rows


# ---------------------------------------------------------------------------------------------
# local


@pytest.mark.slow
def test_local_launcher_runs_two_cells_at_once_with_the_inline_report(tmp_path):
    grid = ["--depths", "4", "--seeds", "1", "--no-report"]  # one online and one offline cell
    inline, local = tmp_path / "inline", tmp_path / "local"
    first = _sweep([*TINY, *grid, "--launcher", "inline", "--out", str(inline)])
    assert first.exit_code == 0, first.output
    result = _sweep([*TINY, *grid, "--launcher", "local", "--jobs", "2", "--out", str(local)])
    assert result.exit_code == 0, result.output
    assert "2 cells in" in result.output and "2 ran" in result.output

    names = json.loads((local / sweep.SWEEP_FILE).read_text())["cells"]
    assert names == ["online-d4-s0", "offline-d4-s0"]
    records = {n: _record(local, n) for n in names}
    assert all(r["status"] == "done" and r["attempts"] == 1 for r in records.values())
    # Every cell ran in its own process, not in the sweep's, and logged there.
    assert len({r["process"] for r in records.values()}) == 2
    assert os.getpid() not in {r["process"] for r in records.values()}
    assert all((local / sweep.LOGS_DIR / f"{n}.log").stat().st_size > 0 for n in names)
    # Two at once: the first two cells' wall-clock intervals overlap.
    a, b = records["online-d4-s0"], records["offline-d4-s0"]
    assert max(a["started"], b["started"]) < min(a["ended"], b["ended"]), (a, b)
    assert json.loads((local / sweep.SWEEP_FILE).read_text())["launcher"] == "local"

    # The same numbers as the inline sweep: grid table and per-run table alike.
    for out in (inline, local):
        report.write_report(out, gallery=False, echo=lambda _: None)
    rows = _table_rows(local / report.REPORT_FILE)
    assert len(rows) == 4 and all("done" in r or "1/1" in r for r in rows)  # 2 cells, 2 tables
    assert rows == _table_rows(inline / report.REPORT_FILE)


def test_local_slots_give_each_process_its_own_gpus_or_its_share_of_cores():
    assert launchers.local_slots(2, [], [0, 1]) == [
        {"CRLKIT_CELL_CPUS": "0", "OMP_NUM_THREADS": "1"},
        {"CRLKIT_CELL_CPUS": "1", "OMP_NUM_THREADS": "1"},
    ]
    assert [s["CRLKIT_CELL_CPUS"] for s in launchers.local_slots(2, [], [0, 1, 2, 3])] == [
        "0,1",
        "2,3",
    ]
    assert [s["CRLKIT_CELL_CPUS"] for s in launchers.local_slots(3, [], [0, 1])] == ["0", "1", "0"]
    gpus = [str(i) for i in range(8)]
    assert [s["CUDA_VISIBLE_DEVICES"] for s in launchers.local_slots(8, gpus, [0])] == gpus
    assert [s["CUDA_VISIBLE_DEVICES"] for s in launchers.local_slots(2, gpus, [0])] == [
        "0,1,2,3",
        "4,5,6,7",
    ]
    with pytest.raises(launchers.LauncherError, match="--jobs 9 is more than the 8 visible"):
        launchers.local_slots(9, gpus, [0])


def test_a_cell_process_pins_itself_to_the_cores_it_was_given():
    code = (
        "import os, sys; from crlkit.experiments import cell; cell._pin_cpus(); "
        "print(sorted(os.sched_getaffinity(0)))"
    )
    env = {**os.environ, "CRLKIT_CELL_CPUS": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "[0]", out.stderr


def test_a_failing_cell_in_a_cell_process_is_failed_with_the_inline_reason(tmp_path):
    bad = tmp_path / "broken.npz"
    bad.write_bytes(b"not an npz file")
    args = [
        "--dataset",
        str(bad),
        "--regimes",
        "offline",
        "--depths",
        "4",
        "--seeds",
        "1",
        "--no-report",
    ]
    inline = _sweep([*args, "--launcher", "inline", "--out", str(tmp_path / "a")])
    local = _sweep([*args, "--launcher", "local", "--jobs", "1", "--out", str(tmp_path / "b")])
    assert inline.exit_code == local.exit_code == 1
    reasons = [
        json.loads((tmp_path / d / "offline-d4-s0" / sweep.FAILED_FILE).read_text())
        for d in ("a", "b")
    ]
    assert reasons[0]["reason"] == reasons[1]["reason"] and str(bad) in reasons[1]["reason"]
    assert _record(tmp_path / "b", "offline-d4-s0")["status"] == "failed"
    assert "1 cell(s) failed, e.g. offline-d4-s0" in local.output


# ---------------------------------------------------------------------------------------------
# slurm (submitit)


def _sweep_process(args: list[str], log: Path) -> subprocess.Popen:
    code = "import sys; from crlkit.cli.main import cli; cli(sys.argv[1:])"
    with open(log, "wb") as f:
        return subprocess.Popen([sys.executable, "-c", code, "sweep", *args], stdout=f, stderr=f)


def _wait_for(condition, proc: subprocess.Popen, log: Path, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"sweep ended early:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"timed out:\n{log.read_text()}"
        time.sleep(0.05)


@pytest.mark.slow
def test_slurm_launcher_through_submitits_local_executor_requeues_a_preempted_cell(tmp_path):
    pytest.importorskip("submitit")
    out, log = tmp_path / "s", tmp_path / "log.txt"
    args = [
        *STOPPABLE,
        "--depths",
        "4",
        "--seeds",
        "2",
        "--launcher",
        "slurm",
        "--slurm-cluster",
        "local",
        "--out",
        str(out),
    ]
    proc = _sweep_process(args, log)
    target = out / "offline-d4-s1"
    try:
        # Preempt the second cell once it has saved a checkpoint: SIGTERM to its cell process.
        _wait_for(lambda: rundir.list_checkpoints(target / rundir.CHECKPOINT_DIR), proc, log)
        os.kill(_record(out, target.name)["process"], signal.SIGTERM)
        assert proc.wait(timeout=600) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert "submitted 2 cell(s) as job array" in text
    assert "offline-d4-s1: preempted; submitted again as job" in text
    assert "2 cells in" in text and "2 ran" in text
    record = _record(out, target.name)
    assert record["status"] == "done" and record["attempts"] == 2
    steps = [
        json.loads(line)["step"]
        for line in (target / rundir.METRICS_JSONL).read_text().splitlines()
    ]
    assert steps == sorted(set(steps)) and steps[-1] == 400  # resumed, nothing logged twice
    cell_log = (out / sweep.LOGS_DIR / f"{target.name}.log").read_text()
    # The signal lands in the host loop ("stopped by SIGTERM at SGD step N; checkpoint ...") or,
    # between its checkpoint and the loop's signal handlers, in the cell ("... before training").
    assert "stopped by SIGTERM" in cell_log and "resuming" in cell_log
    assert (out / "logs" / "slurm").is_dir()  # submitit's own logs of the array

    # Re-submitting the finished sweep runs nothing; the report is written.
    again = _sweep([a for a in args if a != "--no-report"] + ["--no-report"])
    assert again.exit_code == 0 and "0 ran, 2 were done before" in again.output
    report.write_report(out, gallery=False, echo=lambda _: None)
    assert "| offline | 4 | 16 | 1024 | 2/2 |" in (out / report.REPORT_FILE).read_text()


def test_the_sbatch_script_carries_the_slurm_settings(tmp_path):
    pytest.importorskip("submitit")
    cfg = launchers.SlurmConfig(
        partition="gpu",
        account="rl-lab",
        time=600,
        gpus=1,
        cpus=8,
        mem_gb=80,
        parallel=16,
        qos="high",
    )
    script = launchers.sbatch_script(cfg, tmp_path / "logs" / "slurm", cells=60)
    for line in (
        "#SBATCH --partition=gpu",
        "#SBATCH --account=rl-lab",
        "#SBATCH --time=600",
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=80GB",
        "#SBATCH --array=0-59%16",
        "#SBATCH --qos=high",
        "#SBATCH --signal=USR2@90",
        "#SBATCH --job-name=crlkit-sweep",
    ):
        assert line in script, script
    assert "submitit.core._submit" in script


# ---------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize(
    "args, message",
    [
        (["--jobs", "0"], "--jobs must be an integer >= 1 (cell processes at once), got 0"),
        (["--launcher", "cloud"], "'cloud' is not one of 'auto', 'inline', 'local', 'slurm'"),
        (["--launcher", "slurm", "--slurm-gpus", "-1"], "--slurm-gpus must be an integer >= 0"),
    ],
)
def test_bad_launcher_flags_are_one_line_with_exit_code_2(tmp_path, args, message):
    base = ["--dataset", DATASET, "--regimes", "offline", "--out", str(tmp_path / "s")]
    result = CliRunner().invoke(cli, ["sweep", *base, *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "s").exists()


def test_slurm_without_submitit_names_the_pip_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # as if the extra were not installed
    base = ["--dataset", DATASET, "--regimes", "offline", "--out", str(tmp_path / "s")]
    result = CliRunner().invoke(cli, ["sweep", *base, "--launcher", "slurm"])
    assert result.exit_code == 2, result.output
    assert "--launcher slurm needs submitit: pip install 'crlkit[slurm]'" in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "text, message",
    [
        ('partition = "gpu"\ntime = 1d\n', "does not parse at line 2 (key 'time')"),
        ('partition = "gpu"\npartiton = "cpu"\n', "unknown key 'partiton'; valid: partition"),
        ('time = "1 day"\n', "key 'time' must be an integer, got '1 day'"),
    ],
)
def test_a_bad_slurm_option_file_is_one_line_naming_the_key(tmp_path, text, message):
    pytest.importorskip("submitit")
    conf = tmp_path / "slurm.toml"
    conf.write_text(text)
    base = ["--dataset", DATASET, "--regimes", "offline", "--out", str(tmp_path / "s")]
    result = CliRunner().invoke(
        cli, ["sweep", *base, "--launcher", "slurm", "--slurm-config", str(conf)]
    )
    assert result.exit_code == 2, result.output
    assert message in result.output and str(conf) in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_slurm_option_file_settings_are_used_and_flags_override_them(tmp_path):
    conf = tmp_path / "slurm.toml"
    conf.write_text('partition = "gpu"\naccount = "rl"\ntime = 120\n')
    from crlkit.cli.sweep import sweep_configs

    options = {
        "preset": "quickstart",
        "env": None,
        "dataset": DATASET,
        "regimes": ("offline",),
        "out": str(tmp_path / "s"),
        "slurm_config": str(conf),
        "slurm_time": 60,
    }
    *_, slurm = sweep_configs(options)
    assert (slurm.partition, slurm.account, slurm.time) == ("gpu", "rl", 60)


@pytest.mark.slow
def test_a_sweep_dir_made_by_another_launcher_continues_and_says_so(tmp_path):
    out = tmp_path / "s"
    args = [*TINY, "--regimes", "offline", "--depths", "4", "--no-report", "--out", str(out)]
    first = _sweep([*args, "--seeds", "1", "--launcher", "inline"])
    assert first.exit_code == 0, first.output
    args = [a for a in args if a != "--quiet"]
    second = _sweep([*args, "--seeds", "2", "--launcher", "local", "--jobs", "1"])
    assert second.exit_code == 0, second.output
    assert f"{out} was run with --launcher inline; continuing with local" in second.stderr
    assert "1 ran, 1 were done before" in second.output
