"""`crlkit sweep` and `crlkit report`: grid expansion, bad input, failed cells, kill-and-resume,
and tiny end-to-end sweeps through both loops."""

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
from conftest import TINY_SWEEP_ONLINE_FLAGS
from crlkit.cli.main import cli

from crlkit.config import LearnerConfig, NetworkConfig, to_dict
from crlkit.experiments import grid, report, report_data, sweep
from crlkit.runs import rundir
from crlkit.runs.sinks import TrackingConfig
from crlkit.train.offline import OfflineConfig
from crlkit.train.online import OnlineConfig

DATASET = "pointmaze-medium-navigate-sample"
# Tiny offline cells: a 16-wide learner, 1 evaluation episode per task.
TINY_OFFLINE = [
    "--dataset",
    DATASET,
    "--regimes",
    "offline",
    "--width",
    "16",
    "--offline-log-every",
    "20",
    "--offline-eval-episodes",
    "1",
    "--quiet",
]
TINY_ONLINE = ["--env", "pointmaze-medium", *TINY_SWEEP_ONLINE_FLAGS]


def _sweep(args: list[str]):
    return CliRunner().invoke(cli, ["sweep", *args], catch_exceptions=False)


def _record(out: Path, name: str) -> dict:
    return json.loads((out / sweep.CELLS_DIR / f"{name}.json").read_text())


def _steps(run_dir: Path) -> list[int]:
    lines = (run_dir / rundir.METRICS_JSONL).read_text().splitlines()
    return [json.loads(line)["step"] for line in lines]


# ---------------------------------------------------------------------------------------------
# Grid expansion and bad input (no training)


def test_grid_is_seed_major_with_per_regime_configs():
    cfg = grid.SweepConfig(out="x", depths=(4, 16), seeds=2, width=32)
    learner = LearnerConfig()
    plans = grid.expand_grid(
        cfg, learner, OnlineConfig(env="pointmaze-medium"), OfflineConfig(dataset=DATASET)
    )
    names = [p.cell.name for p in plans]
    assert names == [
        "online-d4-s0",
        "offline-d4-s0",
        "online-d16-s0",
        "offline-d16-s0",
        "online-d4-s1",
        "offline-d4-s1",
        "online-d16-s1",
        "offline-d16-s1",
    ]
    for plan in plans:
        net = plan.learner.network
        assert net.critic_depth == net.actor_depth == plan.cell.depth and net.width == 32
        assert plan.run.seed == plan.cell.seed
        online = plan.cell.regime == "online"
        assert plan.learner.actor_loss == ("sac" if online else "ddpg_bc")
        assert plan.run.batch_size == (OnlineConfig().batch_size if online else 1024)


def test_each_regime_keeps_its_own_width_unless_one_is_given():
    cfg = grid.SweepConfig(out="x", depths=(4,), seeds=1)
    learner = LearnerConfig(network=NetworkConfig(width=64))  # the online quickstart's width
    bases = (OnlineConfig(env="pointmaze-medium"), OfflineConfig(dataset=DATASET, preset="paper"))
    plans = grid.expand_grid(cfg, learner, *bases)
    widths = {p.cell.regime: p.learner.network.width for p in plans}
    assert widths == {"online": 64, "offline": 256}  # as crlkit offline (preset paper) uses
    auto = grid.expand_grid(cfg, learner, bases[0], OfflineConfig(dataset=DATASET))
    assert auto[1].run.preset == "quickstart" and auto[1].learner.network.width == 128  # sample
    assert [p.cell.name for p in plans] == ["online-d4-s0", "offline-d4-s0"]
    one = grid.expand_grid(
        grid.SweepConfig(out="x", depths=(4,), seeds=1, width=32), learner, *bases
    )
    assert [p.learner.network.width for p in one] == [32, 32]


def test_norms_axis_names_cells_reaches_the_network_and_splits_the_report(tmp_path):
    cfg = grid.SweepConfig(
        out="x", regimes=("offline",), depths=(4,), seeds=1, norms=("layernorm", "hyperspherical")
    )
    offline = OfflineConfig(dataset=DATASET, preset="paper")
    plans = grid.expand_grid(cfg, LearnerConfig(), offline=offline)
    assert [p.cell.name for p in plans] == [
        "offline-d4-layernorm-s0",
        "offline-d4-hyperspherical-s0",
    ]
    assert [p.learner.network.norm for p in plans] == ["layernorm", "hyperspherical"]
    # The report reads the norm back from each run's config.json and keeps the two apart.
    for plan in plans:
        run_dir = tmp_path / plan.cell.name
        run_dir.mkdir()
        config = {"offline": to_dict(plan.run), "learner": to_dict(plan.learner)}
        (run_dir / "config.json").write_text(json.dumps(config))
    groups = report_data.group_runs(report_data.load_runs(tmp_path))
    assert [g.norm for g in groups] == ["hyperspherical", "layernorm"]
    table = report.grid_table(groups)
    assert table[0].startswith("| regime | depth | width | batch | norm | seeds done |")
    assert table[2].startswith("| offline | 4 | 256 | 1024 | hyperspherical | 0/1 |")
    assert "norm" not in report.grid_table(groups[:1])[0]  # one norm: no column
    with pytest.raises(grid.SweepError, match="unknown norm 'batchnorm'; valid: layernorm"):
        grid.SweepConfig(out="x", norms=("batchnorm",))


def test_width_and_batch_axes_name_cells_and_actor_depth_can_stay_fixed():
    cfg = grid.SweepConfig(
        out="x",
        regimes=("offline",),
        depths=(8,),
        widths=(16, 32),
        batch_sizes=(64,),
        seeds=1,
        actor_depth=4,
    )
    plans = grid.expand_grid(cfg, LearnerConfig(), offline=OfflineConfig(dataset=DATASET))
    assert [p.cell.name for p in plans] == ["offline-d8-w16-b64-s0", "offline-d8-w32-b64-s0"]
    assert [p.learner.network.width for p in plans] == [16, 32]
    assert all(p.learner.network.actor_depth == 4 and p.run.batch_size == 64 for p in plans)


def test_tracking_flags_reach_every_cell_through_sweep_json_grouped_by_the_sweep(tmp_path):
    cfg = grid.SweepConfig(out=str(tmp_path / "study"), regimes=("offline",), depths=(4,), seeds=2)
    tracking = TrackingConfig(tensorboard=True, tags=("deep",))
    tasks, _ = sweep.prepare_sweep(
        cfg, LearnerConfig(), offline=OfflineConfig(dataset=DATASET), tracking=tracking
    )
    expected = TrackingConfig(tensorboard=True, tags=("deep",), group="study")
    assert [t.plan.tracking for t in tasks] == [expected, expected]
    # what a cell process (local and slurm launchers) rebuilds from sweep.json
    assert [p.tracking for p in sweep.load_plans(tmp_path / "study")] == [expected, expected]
    assert "tracking" not in json.dumps(tasks[0].plan.request())  # labels, not the request


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--depths", "4,6"],
            "depths must be a positive multiple of 4 (residual blocks of 4 layers), got 6",
        ),
        (["--depths", "4,x"], "expected comma-separated integers, got '4,x'"),
        (["--regimes", "online,bandit"], "unknown regime 'bandit'; valid: online, offline"),
        (["--regimes", "online"], "the online regime needs --env"),
        (["--seeds", "0"], "seeds must be integers >= 1, got 0"),
        (["--depths", "4,4"], "depths lists a value twice"),
        (["--env", "pointmaze-mediun", "--regimes", "online"], "pointmaze-mediun"),
        (["--widths", "16,32", "--width", "8"], "give --widths (a grid axis) or --width, not both"),
    ],
)
def test_bad_grid_is_one_line_with_exit_code_2(tmp_path, args, message):
    base = ["--dataset", DATASET, "--regimes", "offline", "--out", str(tmp_path / "s")]
    result = CliRunner().invoke(cli, ["sweep", *base, *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "s").exists()  # nothing ran, nothing was written


def test_foreign_folder_in_the_sweep_dir_is_refused(tmp_path):
    (tmp_path / "offline-d4-s0").mkdir(parents=True)
    (tmp_path / "offline-d4-s0" / "notes.txt").write_text("mine")
    result = CliRunner().invoke(
        cli, ["sweep", *TINY_OFFLINE, "--depths", "4", "--seeds", "1", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "is not a cell of this sweep" in result.output
    assert (tmp_path / "offline-d4-s0" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("make", ["missing", "empty", "foreign"])
def test_report_on_a_dir_without_runs_is_one_line_with_exit_code_2(tmp_path, make):
    target = tmp_path / "d"
    if make != "missing":
        target.mkdir()
    if make == "foreign":
        (target / "photos").mkdir()
        (target / "photos" / "config.json").write_text('{"camera": "x"}')
        (target / "notes.txt").write_text("hello")
    result = CliRunner().invoke(cli, ["report", str(target)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert (f"{target} does not exist" if make == "missing" else "no crlkit runs in") in (
        result.output
    )
    assert not (target / report.REPORT_FILE).exists()


# ---------------------------------------------------------------------------------------------
# Failed cells


def test_a_failing_cell_is_recorded_and_the_sweep_goes_on(tmp_path):
    bad = tmp_path / "broken.npz"
    bad.write_bytes(b"not an npz file")
    out = tmp_path / "s"
    args = [
        "--dataset",
        str(bad),
        "--regimes",
        "offline",
        "--depths",
        "4,8",
        "--seeds",
        "1",
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(cli, ["sweep", *args])
    assert result.exit_code == 1, result.output
    assert "2 cell(s) failed" in result.output and "Traceback" not in result.output
    for name in ("offline-d4-s0", "offline-d8-s0"):  # the second ran after the first failed
        failed = json.loads((out / name / sweep.FAILED_FILE).read_text())
        assert str(bad) in failed["reason"] and failed["type"] and failed["traceback"]
        assert _record(out, name)["status"] == "failed"
    text = (out / report.REPORT_FILE).read_text()
    assert "0/1 (1 failed)" in text and "offline-d4-s0`: failed" in text

    # Re-running leaves failed cells alone unless asked to retry them.
    again = CliRunner().invoke(cli, ["sweep", *args])
    assert again.exit_code == 1 and "failed before" in again.stderr
    retry = CliRunner().invoke(cli, ["sweep", *args, "--retry-failed"])
    assert retry.exit_code == 1 and "starting" in retry.stderr
    assert _record(out, "offline-d4-s0")["attempts"] == 2


def test_non_finite_metrics_mark_a_finished_run_as_diverged(tmp_path):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    events = [
        {"step": 10, "time": 1.0, "train/critic_loss": 1.5},
        {"step": 20, "time": 2.0, "train/critic_loss": None},
    ]
    (run_dir / rundir.METRICS_JSONL).write_text("".join(json.dumps(e) + "\n" for e in events))
    problem = sweep.nonfinite_problem(run_dir, {"eval/success": 0.0})
    assert problem == "non-finite train/critic_loss at step 20"
    (run_dir / rundir.METRICS_JSONL).write_text(json.dumps(events[0]) + "\n")
    assert sweep.nonfinite_problem(run_dir, {"eval/success": 0.5}) is None
    assert sweep.nonfinite_problem(run_dir, {"eval/success": None}) == (
        "non-finite final eval/success"
    )


@pytest.mark.slow
def test_a_diverging_cell_is_recorded_as_failed(tmp_path):
    out = tmp_path / "s"
    # The online learner (same-as-online) diverges at this learning rate; the default preset
    # (OGBench's agent) stayed finite for these 40 steps, so it would not test the failure path.
    args = [
        *TINY_OFFLINE,
        "--depths",
        "4",
        "--seeds",
        "1",
        "--offline-steps",
        "40",
        "--offline-preset",
        "same-as-online",
        "--critic-lr",
        "1e30",
        "--actor-lr",
        "1e30",
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(cli, ["sweep", *args])
    assert result.exit_code == 1, result.output
    reason = json.loads((out / "offline-d4-s0" / sweep.FAILED_FILE).read_text())["reason"]
    assert reason.startswith(("Diverged: non-finite", "NonFiniteLoss")), reason


# ---------------------------------------------------------------------------------------------
# Kill and resume


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
def test_a_killed_sweep_reruns_only_the_missing_cells(tmp_path):
    out = tmp_path / "s"
    args = [
        *TINY_OFFLINE,
        "--depths",
        "4",
        "--seeds",
        "2",
        "--offline-steps",
        "300",
        "--offline-checkpoint-every",
        "20",
        "--offline-eval-every",
        "0",
        "--no-report",
        "--out",
        str(out),
    ]
    first, second = out / "offline-d4-s0", out / "offline-d4-s1"
    proc = _sweep_process(args, tmp_path / "log.txt")
    try:
        # Kill once the first cell is done and the second has saved a checkpoint mid-run.
        _wait_for(
            lambda: rundir.list_checkpoints(second / rundir.CHECKPOINT_DIR),
            proc,
            tmp_path / "log.txt",
        )
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (first / rundir.SUMMARY_FILE).is_file() and _record(out, first.name)["status"] == "done"
    assert not (second / rundir.SUMMARY_FILE).exists(), "the kill came too late to test resume"
    assert _record(out, second.name)["status"] == "running"
    first_summary = (first / rundir.SUMMARY_FILE).read_bytes()
    killed_at = rundir.list_checkpoints(second / rundir.CHECKPOINT_DIR)[-1][0]

    result = _sweep([a for a in args if a != "--quiet"])
    assert result.exit_code == 0, result.output
    assert f"[1/2] {first.name}: already done, skipped" in result.stderr
    assert f"[2/2] {second.name}: resuming" in result.stderr
    assert "1 ran, 1 were done before, 0 failed" in result.output
    assert (first / rundir.SUMMARY_FILE).read_bytes() == first_summary  # not run again
    summary = json.loads((second / rundir.SUMMARY_FILE).read_text())
    assert summary["sgd_steps"] == 300 and killed_at < 300
    assert f"resumed {second} at SGD step {killed_at:,}" in result.stderr
    steps = _steps(second)
    assert steps == sorted(set(steps)) and steps[-1] == 300  # continued, nothing logged twice
    assert _record(out, second.name)["status"] == "done"
    assert _record(out, second.name)["attempts"] == 2


# ---------------------------------------------------------------------------------------------
# End to end through both loops


@pytest.mark.slow
def test_sweep_both_regimes_then_report(tmp_path):
    out = tmp_path / "s"
    args = [
        *TINY_ONLINE,
        *TINY_OFFLINE[:2],
        "--regimes",
        "online,offline",
        "--widths",
        "16",
        "--offline-steps",
        "40",
        "--offline-log-every",
        "20",
        "--offline-eval-episodes",
        "1",
        "--depths",
        "4",
        "--batch-sizes",
        "16",
        "--seeds",
        "1",
        "--out",
        str(out),
    ]
    result = _sweep(args)
    assert result.exit_code == 0, result.output
    names = ["online-d4-w16-b16-s0", "offline-d4-w16-b16-s0"]
    assert json.loads((out / sweep.SWEEP_FILE).read_text())["cells"] == names
    for name in names:
        assert (out / name / rundir.SUMMARY_FILE).is_file()
        assert _record(out, name)["status"] == "done"
    online_cfg = json.loads((out / names[0] / rundir.CONFIG_FILE).read_text())
    assert online_cfg["online"]["env"] == "pointmaze-medium"
    assert online_cfg["learner"]["network"]["critic_depth"] == 4
    offline_cfg = json.loads((out / names[1] / rundir.CONFIG_FILE).read_text())
    assert offline_cfg["learner"]["actor_loss"] == "ddpg_bc"
    assert offline_cfg["learner"]["network"]["actor_depth"] == 4

    text = (out / report.REPORT_FILE).read_text()
    assert "crlkit sweep --env pointmaze-medium" in text  # the command that made it
    rows = [line for line in text.splitlines() if line.startswith(("| online |", "| offline |"))]
    assert len(rows) == 2 and all("| 1/1 |" in row for row in rows)
    for png in report.PLOTS.values():
        data = (out / png).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) < 200_000
    # The gallery: each depth's seed-0 run on the same starts and goals, online and offline.
    assert "## What each depth does" in text and "gallery.png" in text

    # The same command again: everything is done, nothing trains.
    mtimes = {n: (out / n / rundir.SUMMARY_FILE).stat().st_mtime_ns for n in names}
    again = _sweep(args)
    assert again.exit_code == 0 and "0 ran, 2 were done before" in again.output
    assert mtimes == {n: (out / n / rundir.SUMMARY_FILE).stat().st_mtime_ns for n in names}

    # Other settings in the same dir are refused, naming the field.
    changed = _sweep([*args, "--offline-eval-episodes", "2"])
    assert changed.exit_code == 2 and "offline.eval_episodes (stored 1, now 2)" in changed.output
