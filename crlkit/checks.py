"""Validators shared by every config: each raises ValueError with one line naming the value.

`check_fields(cfg)` is the one generic check every config class runs first in `__post_init__`:
it walks the fields declared with `crlkit.config.option_field` and checks each value against what
its metadata declares (type, None only where the default is None, finite floats, choices,
ranges, multiples). What a class still checks by hand is what spans several fields.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Sequence
from typing import Any

# The loops count SGD steps (the learner's `step`) and training steps in int32 on the device.
INT32_MAX = 2**31 - 1
INT32_WHY = "SGD steps are counted in int32"


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


def flag_name(name: str) -> str:
    """The CLI flag of a field: `eval_every` -> `--eval-every`."""
    return "--" + name.replace("_", "-")


@functools.cache
def field_types(cls: type) -> dict[str, tuple[type, bool, type | None]]:
    """{field: (base type, may be None, item type of a tuple)} of a dataclass:
    `int | None` -> (int, True, None), `tuple[int, ...]` -> (tuple, False, int)."""
    hints = typing.get_type_hints(cls)
    out: dict[str, tuple[type, bool, type | None]] = {}
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        args = typing.get_args(hint)
        union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        optional = union and type(None) in args
        if union:
            hint = next(a for a in args if a is not type(None))
        item = typing.get_args(hint)[0] if typing.get_origin(hint) is tuple else None
        out[f.name] = (typing.get_origin(hint) or hint, optional, item)
    return out


def check_fields(cfg: Any) -> None:
    """Check every `option_field` of the dataclass `cfg` against its declared metadata."""
    types_ = field_types(type(cfg))
    for f in dataclasses.fields(cfg):
        if "help" in f.metadata:
            base, optional, item = types_[f.name]
            check_value(f.name, getattr(cfg, f.name), base, optional, f.metadata, item)


def check_value(
    name: str,
    value: Any,
    base: type,
    optional: bool,
    meta: typing.Mapping[str, Any],
    item: type | None = None,
) -> None:
    """One field's value against its type and metadata; a one-line ValueError naming the flag."""
    flag = flag_name(name)
    if value is None:
        if optional:
            return
        raise ValueError(f"{flag} needs a value, got None")
    if base is tuple:
        if not isinstance(value, tuple):
            raise ValueError(f"{flag} must be a list of values, got {value!r}")
        for v in value:
            check_value(name, v, item or str, False, meta)
        return
    _check_type(flag, value, base, meta)
    if base is str and meta.get("choices"):
        check_choice(name, value, meta["choices"])
    if base in (int, float):
        _check_range(flag, value, meta)


def _check_type(flag: str, value: Any, base: type, meta: typing.Mapping[str, Any]) -> None:
    if base is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{flag} must be true or false, got {value!r}")
    elif base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{flag} must be an integer, got {value!r}")
    elif base is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{flag} must be a number, got {value!r}")
        if math.isnan(value) or (math.isinf(value) and not meta.get("allow_inf")):
            raise ValueError(f"{flag} must be a finite number, got {value!r}")
    elif base is str:
        if not isinstance(value, str):
            raise ValueError(f"{flag} must be text, got {value!r}")
        if not value.strip():
            raise ValueError(f"{flag} must not be empty (leave the flag out for its default)")
    elif isinstance(base, type) and not isinstance(value, base):
        raise ValueError(f"{flag} must be a {base.__name__}, got {type(value).__name__}")


def _check_range(flag: str, value: float, meta: typing.Mapping[str, Any]) -> None:
    lo, hi = meta.get("minimum"), meta.get("maximum")
    above, below = meta.get("above"), meta.get("below")
    if lo is not None and hi is not None and not lo <= value <= hi:
        why = f" ({meta['maximum_why']})" if meta.get("maximum_why") else ""
        raise ValueError(f"{flag} must be >= {lo:,} and <= {hi:,}{why}, got {value!r}")
    if lo is not None and value < lo:
        kind = "an integer" if isinstance(value, int) else "a number"
        raise ValueError(f"{flag} must be {kind} >= {lo}, got {value!r}")
    if hi is not None and value > hi:
        why = f" ({meta['maximum_why']})" if meta.get("maximum_why") else ""
        raise ValueError(f"{flag} must be <= {hi:,}{why}, got {value!r}")
    if above is not None and below is not None and not above < value < below:
        raise ValueError(f"{flag} must lie strictly between {above} and {below}, got {value!r}")
    if above is not None and not value > above:
        raise ValueError(f"{flag} must be > {above}, got {value!r}")
    if below is not None and not value < below:
        raise ValueError(f"{flag} must be < {below}, got {value!r}")
    step = meta.get("multiple_of")
    if step and value % step:
        raise ValueError(f"{flag} must be a multiple of {step}, got {value!r}")
