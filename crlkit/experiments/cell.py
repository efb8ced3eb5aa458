"""One sweep cell in its own process: `python -m crlkit.experiments.cell SWEEP_DIR CELL`.

The local and slurm launchers start this. It rebuilds the cell's plan from SWEEP_DIR/sweep.json,
decides from the cell's record and folder whether to start or resume it (as the inline sweep does),
and runs it through `run_cell`, so a failure lands in failed.json with the same reason as inline.

Exit codes (crlkit/exit_codes.py): 0 the cell is done (now or before); 1 it failed (recorded);
2 the sweep dir or cell name is unusable; 75 preempted (SIGTERM or SIGUSR1, or the loop stopped
with PREEMPTED): the cell stays `running` and a launcher runs it again, resuming; 130 interrupted.

CRLKIT_CELL_CPUS (e.g. "0,1") pins the process to those cores before JAX starts, which sizes
XLA's CPU thread pool and the native physics threads (both read the process's affinity).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

CPUS_ENV = "CRLKIT_CELL_CPUS"


def _pin_cpus() -> None:
    cpus = os.environ.get(CPUS_ENV)
    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})


def _stop_on_signal(signum: int, frame) -> None:
    from crlkit.exit_codes import PREEMPTED, RunStopped

    # The same words as the host loop's stop line ("stopped by SIGTERM at ..."), before it began.
    raise RunStopped(f"stopped by {signal.Signals(signum).name} before training", PREEMPTED)


def main(argv: list[str]) -> int:
    """Run cell argv[1] of the sweep in argv[0]; returns the exit code."""
    _pin_cpus()
    for signum in (signal.SIGTERM, signal.SIGUSR1):
        signal.signal(signum, _stop_on_signal)
    from crlkit import exit_codes
    from crlkit.experiments.grid import SweepError
    from crlkit.experiments.sweep import cell_state, load_plans, run_cell

    if len(argv) != 2:
        print("usage: python -m crlkit.experiments.cell SWEEP_DIR CELL", file=sys.stderr)
        return exit_codes.BAD_INPUT
    out, name = Path(argv[0]).resolve(), argv[1]
    try:
        plans = {p.cell.name: p for p in load_plans(out)}
        if name not in plans:
            raise SweepError(f"no cell {name!r} in {out}; cells: {', '.join(plans)}")
        plan = plans[name]
        state = cell_state(out / name, plan)
    except (SweepError, ValueError) as err:
        print(f"Error: {err}", file=sys.stderr)
        return exit_codes.BAD_INPUT
    if state == "done":
        print(f"{name}: already done")
        return exit_codes.OK
    if state == "failed" and not (out / name).exists():
        state = "new"  # the sweep cleared the failed attempt: --retry-failed
    if state == "failed":
        print(f"{name}: failed before; the sweep's --retry-failed runs it again")
        return exit_codes.DIVERGED
    resume = state in ("resume", "extend")
    print(f"{name}: {'resuming' if resume else 'starting'} (process {os.getpid()})", flush=True)
    try:
        outcome = run_cell(plan, out / name, resume, lambda line: print(line, flush=True))
    except exit_codes.RunStopped as stop:
        print(f"{name}: {stop}", flush=True)
        return stop.exit_code
    except KeyboardInterrupt:
        return exit_codes.INTERRUPTED
    reason = f": {outcome['reason']}" if "reason" in outcome else ""
    print(f"{name}: {outcome['status']}{reason}")
    return exit_codes.OK if outcome["status"] == "done" else exit_codes.DIVERGED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
