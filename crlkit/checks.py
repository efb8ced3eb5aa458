"""Validators shared by every config: each raises ValueError with one line naming the value."""

from __future__ import annotations

from collections.abc import Sequence


def check_int(name: str, value: object, minimum: int = 1) -> None:
    """`value` must be an int (not a bool) >= `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def check_depth(name: str, value: object) -> None:
    """A tower depth: a positive multiple of 4 (residual blocks of 4 Dense layers)."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0 or value % 4:
        raise ValueError(
            f"{name} must be a positive multiple of 4 (residual blocks of 4 layers), got {value!r}"
        )


def check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    """`value` must be one of `choices`."""
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(choices)}")
