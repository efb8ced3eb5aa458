"""The one dataclass-to-click bridge: `config_options(Cls)` adds a flag per (flattened) field,
with the help and choices its `option_field` metadata carries; `build_config(Cls, options)` pops
them back into a config, over the defaults or a preset (`base`). Configs with depth fields also get
`--depth` (actor and critic depth together)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import click

DEPTH_OPTION = "depth"
SCALARS = {"int": int, "float": float}
DEPTH_FIELDS = ("actor_depth", "critic_depth")


def _nested(f: dataclasses.Field) -> type | None:
    """The config dataclass a field holds (a nested config), or None for a leaf field."""
    factory = f.default_factory if f.default_factory is not dataclasses.MISSING else None
    return factory if factory is not None and dataclasses.is_dataclass(factory) else None


def leaf_fields(cls: type) -> list[dataclasses.Field]:
    """Fields of `cls`, nested config dataclasses flattened into their own fields."""
    nested = [(f, _nested(f)) for f in dataclasses.fields(cls)]
    return [leaf for f, sub in nested for leaf in (leaf_fields(sub) if sub else [f])]


def _flag(name: str, prefix: str) -> str:
    return "--" + (f"{prefix}-" if prefix else "") + name.replace("_", "-")


def _option(f: dataclasses.Field, prefix: str, shown: str | None) -> Callable:
    dest = f"{prefix}_{f.name}" if prefix else f.name
    tuple_field = _is_tuple(f)
    if shown is None:
        shown = ",".join(map(str, f.default)) if tuple_field else str(f.default)
        shown = "" if f.default is None else shown
    # The default goes into the help text: click prints a string show_default in parentheses.
    help_text = f.metadata.get("help", "") + (f"  [default: {shown}]" if shown else "")
    kwargs: dict[str, Any] = {"default": None, "help": help_text}
    if tuple_field:
        item = int if "int" in str(f.type) else str
        kwargs["callback"] = lambda ctx, param, value: _comma_list(item, value)
        return click.option(_flag(f.name, prefix), dest, type=str, **kwargs)
    if f.type in (bool, "bool"):
        off = "--" + (f"{prefix}-" if prefix else "") + "no-" + f.name.replace("_", "-")
        return click.option(f"{_flag(f.name, prefix)}/{off}", dest, **kwargs)
    choices = f.metadata.get("choices")
    kwargs["type"] = (
        click.Choice(choices) if choices else SCALARS.get(str(f.type).removesuffix(" | None"), str)
    )
    return click.option(_flag(f.name, prefix), dest, **kwargs)


def _is_tuple(f: dataclasses.Field) -> bool:
    return str(f.type).startswith(("tuple[", "Tuple["))


def _comma_list(item: type, value: str | None) -> tuple | None:
    """'4,16,64' -> (4, 16, 64); None (flag not given) stays None; a usage error otherwise."""
    if value is None:
        return None
    parts = [v.strip() for v in value.split(",") if v.strip()]
    try:
        return tuple(item(v) for v in parts)
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None


def config_options(
    cls: type,
    prefix: str = "",
    skip: tuple[str, ...] = (),
    presets: Mapping[str, Any] | None = None,
    depth: bool = True,
) -> Callable[[Callable], Callable]:
    """Decorator adding a click option per leaf field of `cls` (minus `skip`); `prefix` makes
    --<prefix>-<field> flags, `presets` ({name: config}) shows each preset's default."""
    fields = [f for f in leaf_fields(cls) if f.name not in skip]
    decorators = [_option(f, prefix, _shown(f.name, presets)) for f in fields]
    if depth and not prefix and set(DEPTH_FIELDS) <= {f.name for f in fields}:
        help_text = "Sets both --actor-depth and --critic-depth (each may still override it)."
        decorators.append(click.option(f"--{DEPTH_OPTION}", type=int, default=None, help=help_text))

    def apply(fn: Callable) -> Callable:
        for decorator in reversed(decorators):
            fn = decorator(fn)
        return fn

    return apply


def _shown(name: str, presets: Mapping[str, Any] | None) -> str | None:
    if not presets:
        return None
    values = {n: field_value(cfg, name) for n, cfg in presets.items()}
    if len({repr(v) for v in values.values()}) == 1:
        return str(next(iter(values.values())))
    return ", ".join(f"{v} ({n})" for n, v in values.items())


def field_value(cfg: Any, name: str) -> Any:
    """A leaf field of a (nested) config, or None."""
    for f in dataclasses.fields(cfg):
        nested = getattr(cfg, f.name)
        if f.name == name:
            return nested
        if dataclasses.is_dataclass(nested) and (found := field_value(nested, name)) is not None:
            return found
    return None


def build_config(cls: type, options: dict[str, Any], base: Any = None, prefix: str = "") -> Any:
    """Build `cls` from parsed flags (popping them); flags left at None keep `base`'s value (a
    preset or a resumed run's config), else the default. ValueError (one line) if invalid."""
    has_depth = set(DEPTH_FIELDS) <= {f.name for f in leaf_fields(cls)}
    depth = options.pop(DEPTH_OPTION, None) if has_depth and not prefix else None
    return _build(cls, options, base, prefix, depth)


def _build(cls: type, options: dict, base: Any, prefix: str, depth: int | None) -> Any:
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        nested = _nested(f)
        if nested is not None:
            sub = getattr(base, f.name) if base is not None else None
            kwargs[f.name] = _build(nested, options, sub, prefix, depth)
            continue
        value = options.pop(f"{prefix}_{f.name}" if prefix else f.name, None)
        if value is None and depth is not None and f.name in DEPTH_FIELDS:
            value = depth
        if value is not None:
            kwargs[f.name] = value
        elif base is not None:
            kwargs[f.name] = getattr(base, f.name)
    return cls(**kwargs)
