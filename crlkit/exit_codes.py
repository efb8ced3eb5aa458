"""Exit codes of every crlkit command, one table (docs/runs.md, "Running on a cluster").

A scheduler can act on them: requeue on PREEMPTED (the run checkpointed and `--resume` continues
it exactly), and possibly on PEER_LOST; the others need a person.
"""

from __future__ import annotations

OK = 0
DIVERGED = 1  # non-finite loss or parameters; the last finite state was checkpointed
BAD_INPUT = 2  # bad flag, env, dataset or run dir, or another process holds the run dir
PEER_LOST = 69  # a process of a multi-process run died or stopped answering (EX_UNAVAILABLE)
IO_FAILED = 74  # a write failed: disk full, read-only, no permission (sysexits EX_IOERR)
PREEMPTED = 75  # SIGTERM or SIGUSR1: checkpointed, then stopped; requeue (sysexits EX_TEMPFAIL)
INTERRUPTED = 130  # SIGINT (Ctrl-C): checkpointed, then stopped (the shell's 128 + 2)


class RunStopped(Exception):
    """A run ended early on purpose, with a one-line message and its exit code (the CLI prints
    the message and exits with `exit_code`; no traceback)."""

    exit_code = DIVERGED

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
