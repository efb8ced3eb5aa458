"""The one host loop: what the online and offline loops do between compiled chunks.

A regime supplies a `Chunk` (its compiled part and what it means); `HostLoop` drives it:

```
start     fresh state, or the newest readable checkpoint's (resume); "resumed ... at step N"
compile   AOT once ("compiling ... / compiled in N s"); chunk lengths are traced, never recompiled
loop      run up to the next log/eval/checkpoint boundary, at most `cap` steps (the first chunk
          is one step: its speed gives the one-line projection, and later caps keep a chunk
          near CHUNK_SECONDS so a signal is answered soon); then log, evaluate, checkpoint
stop      budget: summary.json "budget"; a non-finite update: save the last finite state,
          summary "non_finite", RunStopped(DIVERGED); SIGTERM/SIGUSR1/SIGINT: checkpoint at the
          chunk boundary, summary "signal", RunStopped(PREEMPTED / INTERRUPTED)
```

Event spacing never changes what a chunk computes, so a run resumed from any checkpoint
continues bit for bit.
"""

from __future__ import annotations

import dataclasses
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import jax
import numpy as np

from crlkit import exit_codes
from crlkit import metric_names as names
from crlkit.networks import count_params
from crlkit.runs.checkpoint import Restored
from crlkit.runs.progress import Progress
from crlkit.runs.rundir import RunDir
from crlkit.train import parallel

# A chunk is cut so that it takes about this long at the measured speed: how long a stop signal
# may wait. Slurm's default grace between SIGTERM and SIGKILL is 30 s to a few minutes, so a
# chunk of a minute plus one checkpoint fits its usual --signal lead times (e.g. B:USR1@120).
CHUNK_SECONDS = 60.0


class NonFiniteLoss(exit_codes.RunStopped):
    """Training produced a non-finite loss or parameter; the last finite state was checkpointed."""

    exit_code = exit_codes.DIVERGED


class Chunk(Protocol):
    """One regime's compiled part as the host loop drives it (steps: the regime's loop steps,
    training steps online, SGD steps offline)."""

    unit: str  # what the user counts, plural: "env steps" or "SGD steps"
    total: int  # the budget in loop steps
    evaluate_at_start: bool  # evaluate and log the untrained actor at step 0

    def init(self) -> Any: ...  # a fresh state
    def template(self) -> tuple[Any, Any]: ...  # restore templates: (state, replay or None)
    def restored(self, found: Restored) -> Any: ...  # the state of a restored checkpoint
    def compile(self, state: Any) -> None: ...  # AOT-compile for any chunk length
    def run(self, state: Any, done: int, n: int) -> tuple[Any, Any, int]: ...  # state, stats, bad
    def done(self, state: Any) -> int: ...  # loop steps in a state
    def logged(self, done: int) -> int: ...  # the user's step (env or SGD steps) of loop steps
    def metrics(self, stats: Any, steps: int, seconds: float, state: Any) -> dict: ...
    def evaluate(self, state: Any, done: int) -> dict[str, float]: ...
    def checkpoint(self, state: Any) -> tuple[Any, Any, dict]: ...  # tree, replay or None, meta
    def summary(self, state: Any, train_seconds: float) -> dict[str, Any]: ...


@dataclasses.dataclass(frozen=True)
class Events:
    """Intervals in loop steps (None or 0: never) of logging, evaluation and checkpoints."""

    log: int | None = None
    eval: int | None = None
    checkpoint: int | None = None


@dataclasses.dataclass
class Clock:
    """Seconds a run has spent so far (carried across resumes in the checkpoint meta)."""

    wall: float = 0.0
    train: float = 0.0
    compile: float = 0.0

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> Clock:
        """The clock a checkpoint's meta recorded (zeros for what it lacks)."""
        return cls(
            wall=float(meta.get("wall_seconds", 0.0)),
            train=float(meta.get("train_seconds", 0.0)),
            compile=float(meta.get("compile_seconds", 0.0)),
        )

    def meta(self) -> dict[str, float]:
        """The checkpoint-meta form (`from_meta` reads it back)."""
        return {
            "wall_seconds": self.wall,
            "train_seconds": self.train,
            "compile_seconds": self.compile,
        }

    def summary(self) -> dict[str, float]:
        """Rounded seconds for summary.json."""
        return {k: round(v, 3) for k, v in self.meta().items()}


def param_count(learner_state: Any) -> int:
    """Parameters of a learner state's actor and critic (phi and psi) networks."""
    return count_params(learner_state.actor.params) + count_params(learner_state.critic.params)


def device_name() -> str:
    """'<platform>:<device kind>' of the first device, e.g. 'cpu:cpu' or 'gpu:NVIDIA H200'."""
    d = jax.devices()[0]
    return f"{d.platform}:{getattr(d, 'device_kind', '') or d.platform}"


def next_boundary(done: int, total: int, *everies: int | None) -> int:
    """The first step after `done` that ends a chunk: a multiple of any `every` (> 0) or `total`."""
    ends = [total] + [(done // e + 1) * e for e in everies if e]
    return min(ends)


def due(every: int | None, done: int) -> bool:
    """True when `done` is a multiple of the positive interval `every`."""
    return bool(every) and done % every == 0


def duration(seconds: float) -> str:
    """'45 s', '12 min', '3.4 h'."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def projection_line(
    rate: float, unit: str, budget: int, total_s: float, platform: str, lower_bound: bool = False
) -> str:
    """The one line after the first chunk: speed, the budget's projected wall time, and on a CPU
    with a long projection the hint that the paper's settings need a GPU."""
    at_least = "at least " if lower_bound else ""
    line = (
        f"{rate:,.0f} {unit}/s in the first chunk: the budget of {budget:,} {unit} projects to "
        f"{at_least}{duration(total_s)} on this {platform.upper()}"
    )
    if lower_bound:
        line += " (replay prefill only so far: no SGD update timed yet)"
    if platform == "cpu" and total_s > 3600:
        line += "; the paper's settings need a GPU (or use a smaller --steps/--depth)"
    return line


# ---------------------------------------------------------------------------------------------
# Stop signals

STOP_SIGNALS = {
    signal.SIGTERM: exit_codes.PREEMPTED,
    signal.SIGUSR1: exit_codes.PREEMPTED,
    signal.SIGINT: exit_codes.INTERRUPTED,
}


class StopSignals:
    """While open: SIGTERM, SIGUSR1 and SIGINT ask the loop to stop at the next chunk boundary
    (main thread only; elsewhere signals keep their handlers). A second SIGINT stops at once.
    The previous handlers come back on exit."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGINT and self.received == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}


def agree(signum: int | None, cap: int) -> tuple[int | None, int]:
    """(a signal any process received, the smallest cap): every process of a multi-process run
    cuts the same chunks (each is one program over all processes) and stops at one boundary."""
    if jax.process_count() == 1:
        return signum, cap
    from jax.experimental import multihost_utils

    mine = np.array([signum or 0, cap], np.int32)
    every = np.asarray(multihost_utils.process_allgather(mine)).reshape(-1, 2)
    return int(every[:, 0].max()) or None, int(every[:, 1].min())


# ---------------------------------------------------------------------------------------------
# The loop


class HostLoop:
    """Drives one run's `Chunk`: restore, compile, chunks between events, the summary."""

    def __init__(
        self,
        chunk: Chunk,
        run: RunDir,
        events: Events,
        *,
        progress: bool | None,
        echo: Callable[[str], Any],
        resume: bool = False,
        start_over: bool = False,
    ):
        self.chunk, self.run, self.events = chunk, run, events
        self.progress = progress
        self.echo = echo if run.primary else (lambda _: None)
        self.resume, self.start_over = resume, start_over
        self.clock = Clock()
        self.last_eval: dict[str, float] = {}
        self.cap = 1  # the first chunk: one step, timed
        self._t_start, self._wall0 = time.perf_counter(), 0.0
        self._singular = chunk.unit.removesuffix("s")

    # -- phases -------------------------------------------------------------------------------

    def start(self) -> Any:
        """Fresh state, or the newest readable checkpoint's when resuming (fresh if none)."""
        if not self.resume:
            return self.chunk.init()
        tree, replay = self.chunk.template()
        found = self.run.restore(
            tree,
            replay=replay,
            echo=self.echo,
            start_over=self.start_over,
            max_step=self.chunk.logged(self.chunk.total),
        )
        if found is None:
            return self.chunk.init()
        self.clock = Clock.from_meta(found.meta)
        self.echo(f"resumed {self.run.path} at {self._singular} {found.step:,}")
        return self.chunk.restored(found)

    def compile(self, state: Any) -> None:
        t0 = time.perf_counter()
        self.echo(f"compiling the training {self._kind()} on {jax.device_count()} device(s) ...")
        self.chunk.compile(state)
        seconds = time.perf_counter() - t0
        self.clock.compile += seconds
        self.echo(f"compiled in {seconds:.1f} s")

    def _kind(self) -> str:
        return "epoch" if self.chunk.unit == "env steps" else "chunk"

    def evaluate(self, state: Any, done: int) -> dict[str, float]:
        """The chunk's evaluation, timed and echoed (process 0 only: the others return {})."""
        if not self.run.primary:
            return {}
        t0 = time.perf_counter()
        self.echo(f"evaluating at {self._singular} {self.chunk.logged(done):,} ...")
        out = self.chunk.evaluate(state, done)
        seconds = time.perf_counter() - t0
        result = f"success {out[names.SUCCESS]:.2f}" if names.SUCCESS in out else "no evaluation"
        self.echo(f"evaluated in {seconds:.1f} s: {result}")
        self.last_eval = out
        return out

    def checkpoint(self, state: Any, done: int):
        tree, replay, meta = self.chunk.checkpoint(state)
        self._tick()
        meta = {**meta, **self.clock.meta()}
        return self.run.save_checkpoint(tree, self.chunk.logged(done), meta, replay=replay)

    def write_summary(self, state: Any, stopped: str) -> dict[str, Any]:
        self._tick()
        summary = {
            "run_dir": str(self.run.path),
            "stopped": stopped,
            **self.chunk.summary(state, max(self.clock.train, 1e-9)),
            **self.clock.summary(),
            "device": device_name(),
            **parallel.topology(),
            "params": param_count(state.learner),
            **self.last_eval,
        }
        self.run.write_summary(summary)
        return summary

    def _tick(self) -> None:
        self.clock.wall = self._wall0 + time.perf_counter() - self._t_start

    # -- the loop -----------------------------------------------------------------------------

    def train(self) -> dict[str, Any]:
        """Run to the budget; returns the summary (also summary.json). Raises RunStopped.

        Stop signals are caught from the start: one during compilation stops after the first
        (one-step) chunk."""
        with StopSignals() as signals:
            state = self.start()
            self._t_start, self._wall0 = time.perf_counter(), self.clock.wall
            done = self.chunk.done(state)
            self.compile(state)
            if done == 0 and self.chunk.evaluate_at_start:
                self.run.log(0, {**self.evaluate(state, 0), names.SGD_STEPS: 0})
            # A bar on a terminal unless --quiet; elsewhere (and with --quiet) one status line
            # per log event. Other processes of a multi-process run print neither.
            terminal = sys.stderr.isatty() and self.progress is not False
            total, logged = self.chunk.total, self.chunk.logged
            bar = Progress(
                logged(total),
                unit=self.chunk.unit,
                initial=logged(done),
                disable=not self.run.primary,
                terminal=terminal,
            )
            with bar:
                state = self._chunks(state, done, bar, signals)
        if not self.last_eval:  # resumed a finished run: evaluate what it holds
            self.evaluate(state, self.chunk.done(state))
        return self.write_summary(state, "budget")

    def _chunks(self, state: Any, done: int, bar: Progress, signals: StopSignals) -> Any:
        chunk, ev = self.chunk, self.events
        acc, acc_steps, acc_seconds, first = None, 0, 0.0, True
        while done < chunk.total:
            end = min(
                next_boundary(done, chunk.total, ev.log, ev.eval, ev.checkpoint), done + self.cap
            )
            t0 = time.perf_counter()
            state, stats, bad = chunk.run(state, done, end - done)
            jax.block_until_ready(state)
            seconds = time.perf_counter() - t0
            self.clock.train += seconds
            before, done = done, chunk.done(state)
            acc = stats if acc is None else jax.tree.map(np.add, acc, stats)
            acc_steps, acc_seconds = acc_steps + done - before, acc_seconds + seconds
            event = chunk.metrics(acc, acc_steps, acc_seconds, state)
            per_step = seconds / max(done - before, 1)
            cap = max(1, math.floor(CHUNK_SECONDS / max(per_step, 1e-9)))
            stop, self.cap = agree(signals.received, cap)
            if first:
                first = False
                self._project(event, done, done - before, seconds)
            if bad >= 0:
                self._diverged(state, done, bad, event)
            is_last = done >= chunk.total
            if due(ev.eval, done) or is_last:
                event.update(self.evaluate(state, done))
                if names.SUCCESS in event:
                    bar.set_eval(success=event[names.SUCCESS])
            if due(ev.log, done) or due(ev.eval, done) or is_last:
                self.run.log(chunk.logged(done), event)
                bar.update(chunk.logged(done), event)
                acc, acc_steps, acc_seconds = None, 0, 0.0
            bar.update(chunk.logged(done))
            path = None
            if due(ev.checkpoint, done) or is_last or stop:
                path = self.checkpoint(state, done)
            if stop and not is_last:
                self._stopped(state, done, stop, path)
        return state

    def _project(self, event: dict, done: int, steps: int, seconds: float) -> None:
        """The one line after the first chunk: speed and the budget's projected wall time."""
        chunk = self.chunk
        rate = (chunk.logged(steps) - chunk.logged(0)) / max(seconds, 1e-9)
        remaining = (chunk.total - done) * seconds / max(steps, 1)
        total_s = self.clock.compile + self.clock.train + remaining
        prefill = chunk.unit == "env steps" and event.get(names.SGD_STEPS_PER_S) == 0
        platform = jax.devices()[0].platform
        budget = chunk.logged(chunk.total)
        self.echo(projection_line(rate, chunk.unit, budget, total_s, platform, prefill))

    def _diverged(self, state: Any, done: int, bad: int, event: dict) -> None:
        """Save the last finite state, write the summary, raise NonFiniteLoss."""
        self.run.log(self.chunk.logged(done), event)
        path = self.checkpoint(state, done)
        self.write_summary(state, "non_finite")
        where = f" ({self._singular} {self.chunk.logged(done):,})"
        where = "" if self.chunk.unit == "SGD steps" else where
        raise NonFiniteLoss(
            f"non-finite loss or parameters at SGD step {bad}{where}; stopped and saved the "
            f"last finite state to {path}"
        )

    def _stopped(self, state: Any, done: int, signum: int, path: Any) -> None:
        """Checkpointed at a stop signal: summary "signal", one line, RunStopped."""
        self.write_summary(state, "signal")
        name = signal.Signals(signum).name
        message = (
            f"stopped by {name} at {self._singular} {self.chunk.logged(done):,}; checkpoint "
            f"{path}; continue with --resume {self.run.path}"
        )
        raise exit_codes.RunStopped(message, STOP_SIGNALS.get(signum, exit_codes.PREEMPTED))
