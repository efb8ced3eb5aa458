"""The progress bar of both loops: tqdm over the loop's step counter, rate, ETA, last eval."""

from __future__ import annotations


class Progress:
    """A tqdm bar over the loop's step counter: rate (env steps/s or SGD steps/s), ETA, eval.

    `update(step)` takes the absolute step count; `set_eval(success=0.8)` shows the latest
    evaluation in the postfix. Disabled automatically when stderr is not a terminal (tqdm's
    default with `disable=None`).
    """

    def __init__(
        self,
        total: int,
        unit: str = "env steps",
        initial: int = 0,
        desc: str | None = None,
        disable: bool | None = None,
    ):
        from tqdm.auto import tqdm

        self._bar = tqdm(
            total=total,
            initial=initial,
            unit=" " + unit,  # the SI prefix sits before it: "12.3k env steps/s"
            unit_scale=True,
            desc=desc,
            disable=disable,
            dynamic_ncols=True,
            smoothing=0.3,
        )

    def update(self, step: int) -> None:
        """Move the bar to absolute `step`."""
        self._bar.update(int(step) - self._bar.n)

    def set_eval(self, **metrics: float) -> None:
        """Show the latest evaluation numbers (e.g. success=0.83) after the rate."""
        self._bar.set_postfix({k: f"{float(v):.3g}" for k, v in metrics.items()}, refresh=True)

    def close(self) -> None:
        self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
