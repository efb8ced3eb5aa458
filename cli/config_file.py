"""`--config FILE`: a saved config.json (a run's, or one written in its form) as a command's base
configs, which the flags given on the command line then override."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from crlkit.config import from_dict

# Sections a run's config.json may hold that are results, not settings: read past, never used.
DERIVED_SECTIONS = ("dataset",)

CONFIG_HELP = (
    "Start from this config.json (e.g. runs/<name>/config.json of an earlier run): its "
    "sections are the base, flags given on the command line override them."
)


def read_config_file(
    path: str | Path, sections: dict[str, type], label: str | None = None
) -> dict[str, Any]:
    """{section: config} of the JSON file `path`, one config dataclass per `sections` entry.

    A section the file lacks is left out. Raises ValueError (one line, starting with `label`,
    default `--config PATH`) naming the file's first key that is not a crlkit setting of this
    command, or the value a field refuses.
    """
    label = label or f"--config {path}"
    try:
        data = json.loads(Path(path).read_text())
    except OSError as err:
        raise ValueError(f"{label}: cannot read it ({err.strerror or err})") from None
    except ValueError as err:
        raise ValueError(f"{label}: not JSON ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{label}: not a crlkit config (a JSON object of sections)")
    known = ", ".join(sections)
    for key, value in data.items():
        if key in DERIVED_SECTIONS:
            continue
        if key not in sections:
            raise ValueError(f"{label}: unknown key {key!r} (a crlkit config has {known})")
        bad = first_unknown_key(sections[key], value, key)
        if bad is not None:
            raise ValueError(f"{label}: unknown key {bad!r}, not a crlkit setting")
    if not set(data) & set(sections):
        raise ValueError(f"{label}: not a crlkit config (no {known} section)")
    out: dict[str, Any] = {}
    for key, cls in sections.items():
        if key in data:
            try:
                out[key] = from_dict(cls, data[key])
            except (TypeError, ValueError) as err:
                raise ValueError(f"{label}: section {key!r}: {err}") from None
    return out


def first_unknown_key(cls: type, data: Any, where: str) -> str | None:
    """The dotted path of the first key of `data` that is no field of `cls` (nested configs
    followed), or None when every key is one."""
    if not isinstance(data, dict):
        return where
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in data.items():
        if key not in fields:
            return f"{where}.{key}"
        factory = fields[key].default_factory
        if factory is not dataclasses.MISSING and dataclasses.is_dataclass(factory):
            bad = first_unknown_key(factory, value, f"{where}.{key}")
            if bad is not None:
                return bad
    return None
