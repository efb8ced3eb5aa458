"""The one dataclass-to-click bridge: `config_options(Cls)` adds a flag per (flattened) field,
with the help, choices and default its `option_field` metadata carries; `build_config(Cls,
options)` pops them back into a config, over the defaults or a preset (`base`). Configs with depth
fields also get `--depth` (actor and critic depth together).

A field whose default is None ("auto": decided later) takes a value or the word `auto`; its help
ends in `[default: auto: <what auto resolves to>]`. Tuple fields take comma-separated values,
or (declared with `repeat=True`) one value per use of the flag.
Values are validated by the config class itself (`crlkit.checks.check_fields`), so a flag and the
Python API refuse the same values with the same one-line message.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import click

from crlkit.checks import check_depth, field_types

DEPTH_OPTION = "depth"
DEPTH_FIELDS = ("actor_depth", "critic_depth")
AUTO = "auto"


class _Auto:
    """The parsed `auto` of a flag: set the field to None (decided later), whatever the base."""

    def __repr__(self) -> str:
        return AUTO


AUTO_VALUE = _Auto()
_SCALARS = {int: click.INT, float: click.FLOAT, str: click.STRING}


class AutoOr(click.ParamType):
    """A value of `inner`, or `auto`."""

    def __init__(self, inner: click.ParamType) -> None:
        self.inner = inner
        self.name = f"{inner.name}|auto"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        inner = self.inner.get_metavar(param, ctx) if isinstance(self.inner, click.Choice) else None
        return inner.replace("[", "[auto|") if inner else f"{self.inner.name.upper()}|auto"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value is AUTO_VALUE or (isinstance(value, str) and value.strip().lower() == AUTO):
            return AUTO_VALUE
        return self.inner.convert(value, param, ctx)


class CommaList(click.ParamType):
    """Comma-separated values of `item`: '4,16,64' -> (4, 16, 64)."""

    def __init__(self, item: click.ParamType) -> None:
        self.item = item
        self.name = f"{item.name}[,{item.name}...]"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return f"{self.item.name.upper()},..."

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        items = [v.strip() for v in value.split(",") if v.strip()]
        try:
            return tuple(self.item.convert(v, param, ctx) for v in items)
        except click.BadParameter:
            kind = {"integer": "integers", "float": "numbers"}.get(self.item.name, "values")
            self.fail(f"expected comma-separated {kind}, got {value!r}", param, ctx)


class NonEmptyPath(click.Path):
    """click.Path that refuses '' (which would mean the current directory)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():
            self.fail("must not be empty (leave the flag out for its default)", param, ctx)
        return super().convert(value, param, ctx)


def _nested(f: dataclasses.Field) -> type | None:
    """The config dataclass a field holds (a nested config), or None for a leaf field."""
    factory = f.default_factory if f.default_factory is not dataclasses.MISSING else None
    return factory if factory is not None and dataclasses.is_dataclass(factory) else None


def leaf_fields(cls: type) -> list[dataclasses.Field]:
    """Fields of `cls`, nested config dataclasses flattened into their own fields."""
    nested = [(f, _nested(f)) for f in dataclasses.fields(cls)]
    return [leaf for f, sub in nested for leaf in (leaf_fields(sub) if sub else [f])]


def _owners(cls: type) -> dict[str, type]:
    """{leaf field name: the dataclass that declares it}."""
    out: dict[str, type] = {}
    for f in dataclasses.fields(cls):
        sub = _nested(f)
        out.update(_owners(sub) if sub else {f.name: cls})
    return out


def _flag(name: str, prefix: str) -> str:
    return "--" + (f"{prefix}-" if prefix else "") + name.replace("_", "-")


def param_type(cls: type, f: dataclasses.Field) -> click.ParamType | None:
    """The click type of a field's flag (None for a boolean on/off pair)."""
    base, _, item = field_types(cls)[f.name]
    if base is bool:
        return None
    choices = f.metadata.get("choices")
    if base is tuple:
        inner: click.ParamType = CommaList(click.Choice(choices) if choices else _SCALARS[item])
    else:
        inner = click.Choice(choices) if choices else _SCALARS.get(base, click.STRING)
    return AutoOr(inner) if f.metadata.get("auto") else inner


def show_value(f: dataclasses.Field, value: Any) -> str | None:
    """How `--help` shows a field's value: `1024`, `auto: <...>`, `on`; None: nothing to show."""
    if value is None:
        auto = f.metadata.get("auto")
        return f"auto: {auto}" if auto else None
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or None
    return str(value)


def _option(cls: type, f: dataclasses.Field, prefix: str, shown: str | None) -> Callable:
    dest = f"{prefix}_{f.name}" if prefix else f.name
    help_text = f.metadata.get("help", "")
    if shown:
        help_text = f"{help_text}  [default: {shown}]"
    kwargs: dict[str, Any] = {"default": None, "help": help_text, "show_default": False}
    kind = param_type(cls, f)
    if f.metadata.get("repeat"):
        item = field_types(cls)[f.name][2] or str
        kwargs |= {"type": _SCALARS[item], "multiple": True}
        return click.option(_flag(f.name, prefix), dest, **kwargs)
    if kind is None:
        off = "--" + (f"{prefix}-" if prefix else "") + "no-" + f.name.replace("_", "-")
        return click.option(f"{_flag(f.name, prefix)}/{off}", dest, **kwargs)
    return click.option(_flag(f.name, prefix), dest, type=kind, **kwargs)


def config_options(
    cls: type,
    prefix: str = "",
    skip: tuple[str, ...] = (),
    presets: Mapping[str, Any] | None = None,
    depth: bool = True,
) -> Callable[[Callable], Callable]:
    """Decorator adding a click option per leaf field of `cls` (minus `skip`); `prefix` makes
    --<prefix>-<field> flags, `presets` ({name: config}) shows each preset's default."""
    owners = _owners(cls)
    fields = [f for f in leaf_fields(cls) if f.name not in skip]
    decorators = [_option(owners[f.name], f, prefix, _shown(f, presets)) for f in fields]
    if depth and not prefix and set(DEPTH_FIELDS) <= {f.name for f in fields}:
        help_text = "Sets both --actor-depth and --critic-depth (each may still override it)."
        decorators.append(click.option(f"--{DEPTH_OPTION}", type=int, default=None, help=help_text))

    def apply(fn: Callable) -> Callable:
        for decorator in reversed(decorators):
            fn = decorator(fn)
        return fn

    return apply


def _shown(f: dataclasses.Field, presets: Mapping[str, Any] | None) -> str | None:
    if not presets:
        default = f.default if f.default is not dataclasses.MISSING else None
        return show_value(f, default)
    values = {n: show_value(f, field_value(cfg, f.name)) for n, cfg in presets.items()}
    if len(set(values.values())) == 1:
        return next(iter(values.values()))
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
    preset or a resumed run's config), else the default; `auto` sets None. ValueError (one line)
    if invalid."""
    has_depth = set(DEPTH_FIELDS) <= {f.name for f in leaf_fields(cls)}
    depth = options.pop(DEPTH_OPTION, None) if has_depth and not prefix else None
    if depth is not None:  # named as the user typed it, not as the fields it sets
        check_depth(f"--{DEPTH_OPTION}", depth)
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
        if f.metadata.get("repeat"):  # a repeated flag not given parses as ()
            value = tuple(value or ()) or None
        if value is None and depth is not None and f.name in DEPTH_FIELDS:
            value = depth
        if value is AUTO_VALUE:
            kwargs[f.name] = None
        elif value is not None:
            kwargs[f.name] = value
        elif base is not None:
            kwargs[f.name] = getattr(base, f.name)
    return cls(**kwargs)
