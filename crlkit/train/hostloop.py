"""What both loops do on the host between compiled chunks: clock, event schedule, summary, stop.

The online and offline loops differ in what a chunk computes, not in how the host drives it:
run a chunk up to the next event boundary, time it, log, evaluate, checkpoint; stop on a
non-finite update after saving the last finite state. The shared pieces live here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax

from crlkit.networks import count_params


class NonFiniteLoss(RuntimeError):
    """Training produced a non-finite loss or parameter; the last finite state was checkpointed."""


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


def progress_disabled(progress: bool | None) -> bool | None:
    """tqdm's `disable` for a loop's `progress` flag (None: only on a terminal)."""
    return None if progress is None else not progress


def wall_estimate(remaining_s: float, elapsed_s: float, platform: str | None = None) -> str | None:
    """On a CPU, a one-line estimate of the run's wall time when it would exceed an hour."""
    platform = platform or jax.devices()[0].platform
    total = remaining_s + elapsed_s
    if platform != "cpu" or total <= 3600:
        return None
    return (
        f"estimate on this CPU: {total / 3600:.1f} h for the whole budget at the first epoch's "
        f"speed ({remaining_s / 3600:.1f} h left); a GPU or a smaller --steps/--depth is faster"
    )
