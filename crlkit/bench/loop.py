"""`crlkit bench learner --loop offline|online`: peak memory of a few steps of the real loop.

The update bench (`learner.py`) times one jitted `update_if_finite`; what a user's run holds is
more: the dataset or replay buffer, env states, the evaluator, the checkpoint writer. This runs the
loop's own command (`crlkit offline` / `crlkit online`) for a few steps per depth, each in a fresh
process, with the learner the update bench times (the online learner: one critic), and reports
that process's peak resident set size and wall time, so the two can be read side by side.

- offline: `crlkit offline --preset same-as-online` on the shipped sample dataset
  (pointmaze-medium-navigate-sample: no download), 4 SGD steps, one evaluation episode per task.
- online: `crlkit online --env ant` (the paper's ant: the update bench's sizes), 8 envs, 3 rounds
  of 10 env steps and 2 SGD steps, replay 64 steps per env, one evaluation episode.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tempfile
import time

LOOPS = ("offline", "online")
SAMPLE_DATASET = "pointmaze-medium-navigate-sample"
CLI = "from crlkit.cli.main import cli; cli()"
# Runs the command given as its arguments and prints the peak RSS (KiB on Linux) of that one
# child: RUSAGE_CHILDREN of a fresh process that has no other children.
WRAPPER = (
    "import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
    "print('CRLKIT_LOOP_RSS', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, rc)"
)


@dataclasses.dataclass(frozen=True)
class LoopBenchConfig:
    """Which loop, at which depths and sizes."""

    loop: str  # offline or online
    depths: tuple[int, ...]
    width: int
    batch: int
    timeout_s: float

    def __post_init__(self) -> None:
        if self.loop not in LOOPS:
            raise ValueError(f"loop {self.loop!r} is not one of {', '.join(LOOPS)}")


def loop_args(cfg: LoopBenchConfig, depth: int, out_dir: str) -> list[str]:
    """The `crlkit` arguments of one measured run."""
    size = ["--depth", str(depth), "--width", str(cfg.width), "--batch-size", str(cfg.batch)]
    if cfg.loop == "offline":
        return [
            "offline",
            "--dataset",
            SAMPLE_DATASET,
            "--preset",
            "same-as-online",
            *size,
            "--steps",
            "4",
            "--eval-episodes",
            "1",
            "--out",
            out_dir,
            "--quiet",
        ]
    return [
        "online",
        "--env",
        "ant",
        *size,
        "--num-envs",
        "8",
        "--unroll-length",
        "10",
        "--updates-per-step",
        "2",
        "--prefill-steps",
        "10",
        "--replay-steps-per-env",
        "64",
        "--steps",
        "240",
        "--eval-every",
        "0",
        "--eval-episodes",
        "1",
        "--out",
        out_dir,
        "--quiet",
    ]


def measure_loop(cfg: LoopBenchConfig, depth: int) -> dict:
    """One depth: {depth, peak_mem_mb, wall_s} or {depth, error}."""
    with tempfile.TemporaryDirectory() as tmp:
        args = loop_args(cfg, depth, os.path.join(tmp, "run"))
        cmd = [sys.executable, "-c", WRAPPER, sys.executable, "-c", CLI, *args]
        start = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=cfg.timeout_s)
        except subprocess.TimeoutExpired:
            return {"depth": depth, "error": f"timed out after {cfg.timeout_s:.0f} s"}
        wall = time.perf_counter() - start
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("CRLKIT_LOOP_RSS")), "")
    parts = line.split()
    if len(parts) != 3 or parts[2] != "0":
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"depth": depth, "error": f"`crlkit {' '.join(args[:1])}` failed: {tail[0]}"}
    return {"depth": depth, "peak_mem_mb": round(int(parts[1]) / 1024, 1), "wall_s": round(wall, 1)}


def run_loop_bench(cfg: LoopBenchConfig, log=print) -> dict:
    """Every depth of `cfg`, one fresh process each; returns {config, rows}."""
    rows = []
    for depth in cfg.depths:
        log(f"depth {depth}: crlkit {' '.join(loop_args(cfg, depth, 'RUN'))}")
        row = measure_loop(cfg, depth)
        log(format_loop_row(row))
        rows.append(row)
    return {"config": dataclasses.asdict(cfg), "rows": rows}


def format_loop_row(row: dict) -> str:
    """One printed line of the loop bench."""
    if "error" in row:
        return f"{row['depth']:>6}  {row['error']}"
    mem, wall = row["peak_mem_mb"], row["wall_s"]
    return f"{row['depth']:>6}  peak RSS {mem:>9.1f} MiB  wall {wall:>7.1f} s"
