"""What a run prints while it trains: a tqdm bar on a terminal, one status line per log event
elsewhere (a log file, a pipe, a Slurm job's output), as CleanRL and SB3 print them."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping

from crlkit import metric_names as names

# The metrics a status line shows when a log event has them, in this order, with their label.
STATUS_METRICS = (
    (names.ENV_STEPS_PER_S, "env steps/s"),
    (names.SGD_STEPS_PER_S, "SGD steps/s"),
    (names.TRAIN + "critic_loss", "critic_loss"),
    (names.TRAIN + "actor_loss", "actor_loss"),
    (names.TRAIN + "alpha", "alpha"),
    (names.TRAIN + "bc_alpha", "bc_alpha"),
)


def _number(value: float) -> str:
    """A short, readable number: 12,345 for large values, 3 significant digits otherwise."""
    value = float(value)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def status_line(
    step: int, total: int, unit: str, event: Mapping[str, float], last_eval: float | None
) -> str:
    """'env steps 12,800/307,200 (4%) | 3,210 env steps/s | critic_loss 5.2 | ... | success 0.50'
    (`last_eval`: the latest evaluation's success, shown on every line once there is one)."""
    done = f"{unit} {step:,}/{total:,} ({100.0 * step / max(total, 1):.0f}%)"
    parts = [done]
    parts += [f"{_number(event[k])} {label}" for k, label in STATUS_METRICS[:2] if k in event]
    parts += [f"{label} {_number(event[k])}" for k, label in STATUS_METRICS[2:] if k in event]
    if last_eval is not None:
        parts.append(f"success {last_eval:.2f}")
    return " | ".join(parts)


class Progress:
    """The loop's progress: a tqdm bar (rate, ETA, last eval) when stderr is a terminal, else one
    `status_line` per log event through `echo`.

    `update(step, event)` takes the absolute step count and, at a log event, its metrics;
    `set_eval(success=0.8)` records the latest evaluation. `disable=True` shows nothing;
    `min_seconds` spaces the status lines (for callers that update often). `echo` defaults to
    stdout (the run's log; the bar, notes and errors go to stderr).
    """

    def __init__(
        self,
        total: int,
        unit: str = "env steps",
        initial: int = 0,
        desc: str | None = None,
        disable: bool | None = None,
        echo: Callable[[str], None] | None = None,
        terminal: bool | None = None,
        min_seconds: float = 0.0,
    ):
        from tqdm.auto import tqdm

        terminal = sys.stderr.isatty() if terminal is None else terminal
        self.total, self.unit, self._step = total, unit, int(initial)
        echo = echo or (lambda line: print(line, flush=True))
        self._echo = echo if (not disable and not terminal) else None
        self._success: float | None = None
        self._min_seconds, self._last_line = min_seconds, -float("inf")
        self._bar = tqdm(
            total=total,
            initial=initial,
            unit=" " + unit,  # the SI prefix sits before it: "12.3k env steps/s"
            unit_scale=True,
            desc=desc,
            disable=bool(disable) or not terminal,
            dynamic_ncols=True,
            smoothing=0.3,
        )

    def update(self, step: int, event: Mapping[str, float] | None = None) -> None:
        """Move the bar to absolute `step`; off a terminal, print the status line of `event`."""
        self._bar.update(int(step) - self._step)
        self._step = int(step)
        now = time.monotonic()
        if self._echo is None or event is None:
            return
        if now - self._last_line >= self._min_seconds or int(step) >= self.total:
            self._last_line = now
            self._echo(status_line(int(step), self.total, self.unit, event, self._success))

    @property
    def n(self) -> int:
        """The step the bar stands at."""
        return self._step

    def set_eval(self, **metrics: float) -> None:
        """Show the latest evaluation numbers (e.g. success=0.83) after the rate."""
        if "success" in metrics:
            self._success = float(metrics["success"])
        self._bar.set_postfix({k: f"{float(v):.3g}" for k, v in metrics.items()}, refresh=True)

    def close(self) -> None:
        self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
