"""The dataset catalog (one JSON card per named dataset in top-level `datasets/`) and name lookup.

A card says where a dataset comes from (`ogbench`: OGBench's servers and cache; `sample`: files
shipped in `datasets/`; `minari`: a Minari id), which crlkit env it belongs to, its size, its goal
slice and the `crlkit collect` command that builds a local equivalent. Short names resolve to full
ones (`antmaze-large` -> `antmaze-large-navigate-v0`); `load` turns any dataset spec (name, path,
`minari:<id>`) into the in-memory layout.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from crlkit.data import minari_io, ogbench_io
from crlkit.data.dataset import Dataset, DatasetError
from crlkit.data.env_link import crlkit_env, env_goal_indices

SOURCES = ("ogbench", "sample", "minari")
SPLITS = ("train", "val")
# OGBench-style full names: anything ending in a version, e.g. cube-single-play-v0.
VERSIONED_NAMES = re.compile(r".+-v\d+$")


@dataclasses.dataclass(frozen=True)
class Card:
    """One catalog entry (a `datasets/NAME.json` file).

    Attributes:
      name: full dataset name (OGBench's or Minari's id, or a sample's own name).
      source: `ogbench`, `sample` (files shipped in datasets/) or `minari`.
      env: the crlkit env the data was collected in (`crlkit envs`).
      ogbench_env_id: OGBench's env id used for evaluation, or None.
      dataset_type: `navigate`, `stitch` or `explore`.
      episodes: episodes in the train split.
      episode_length: transitions per episode (each episode stores one more row).
      transitions: rows in the train split, as OGBench counts them (episodes * (length + 1)).
      obs_dim: observation size; action_dim: action size.
      goal_indices: observation columns that form a goal.
      files: data files, relative to datasets/ for samples, else to the OGBench cache.
      collect: the `crlkit collect` command that builds this dataset or a local equivalent.
      description: one or two sentences.
      noise: action noise of the collecting policy.
    """

    name: str
    source: str
    env: str
    ogbench_env_id: str | None
    dataset_type: str
    episodes: int
    episode_length: int
    transitions: int
    obs_dim: int
    action_dim: int
    goal_indices: tuple[int, ...]
    files: tuple[str, ...]
    collect: str
    description: str
    noise: float


def catalog_dir() -> Path:
    """The catalog folder: $CRLKIT_DATASETS_DIR, else the repository's top-level datasets/."""
    override = os.environ.get("CRLKIT_DATASETS_DIR")
    if not override:
        return Path(__file__).resolve().parents[2] / "datasets"
    path = Path(override).expanduser()
    if not path.is_dir():
        what = "a file" if path.exists() else "missing"
        raise DatasetError(
            f"CRLKIT_DATASETS_DIR={override}",
            f"not a folder ({what}); point it at a folder of "
            "dataset cards (*.json) or unset it to use the shipped datasets/",
        )
    return path


def load_catalog(directory: Path | None = None) -> dict[str, Card]:
    """All cards in `directory` (default `catalog_dir()`), by name."""
    directory = directory or catalog_dir()
    cards = {}
    for path in sorted(directory.glob("*.json")):
        card = read_card(path)
        cards[card.name] = card
    return cards


def read_card(path: Path) -> Card:
    """Parses and checks one card file."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DatasetError(path, f"not a readable card ({type(err).__name__}: {err})") from None
    names = {f.name for f in dataclasses.fields(Card)}
    missing = sorted(names - set(raw))
    if missing:
        raise DatasetError(path, f"card lacks field(s) {', '.join(missing)}")
    if raw["source"] not in SOURCES:
        raise DatasetError(path, f"source {raw['source']!r} is not one of {', '.join(SOURCES)}")
    raw = {k: raw[k] for k in names}
    raw["goal_indices"] = tuple(raw["goal_indices"])
    raw["files"] = tuple(raw["files"])
    return Card(**raw)


def find_card(name: str, cards: dict[str, Card] | None = None) -> tuple[Card, str | None]:
    """The card for a full or short name, and the resolution line when the name was short.

    `antmaze-large` -> `antmaze-large-navigate-v0` (navigate is OGBench's default data);
    `antmaze-large-stitch` -> `antmaze-large-stitch-v0`.
    """
    cards = load_catalog() if cards is None else cards
    if name in cards:
        return cards[name], None
    for full in (f"{name}-v0", f"{name}-navigate-v0"):
        if full in cards:
            return cards[full], f"{name} -> {full}"
    short = {re.sub(r"(-navigate)?-v0$", "", n): n for n in cards}
    hint = difflib.get_close_matches(name, [*short, *cards], n=1, cutoff=0.6)
    did_you_mean = f"did you mean {hint[0]!r}? " if hint else ""
    raise DatasetError(name, f"unknown dataset; {did_you_mean}see: crlkit datasets")


def local_path(card: Card, data_dir: str | os.PathLike | None = None) -> Path | None:
    """Where the card's data lies on this machine, or None when it is not present."""
    if card.source == "sample":
        path = catalog_dir() / card.files[0]
    elif card.source == "ogbench":
        path = Path(data_dir or ogbench_io.DEFAULT_DATA_DIR).expanduser() / f"{card.name}.npz"
    else:
        path = minari_io.minari_root() / card.name
        return path if (path / "data" / "metadata.json").is_file() else None
    return path if path.is_file() else None


def load_dataset(
    spec: str | os.PathLike,
    *,
    split: str = "train",
    data_dir: str | os.PathLike | None = None,
    goal_indices: Sequence[int] | None = None,
    echo: Callable[[str], Any] | None = None,
    env: str | None = None,
) -> Dataset:
    """Loads a dataset by catalog name, OGBench name, path (`.npz` or Minari dir) or `minari:<id>`.

    Args:
      spec: `pointmaze-medium-navigate-sample`, `antmaze-large` (short names resolve through the
        catalog; the resolution is passed to `echo`), `path/NAME.npz`, `path/to/minari_dataset`,
        or `minari:<id>` (from $MINARI_DATASETS_PATH or ~/.minari/datasets).
      split: `train` or `val` (OGBench's NAME-val.npz; Minari datasets have no val split).
      data_dir: OGBench cache directory (default ~/.ogbench/data).
      goal_indices: the goal slice, for files that do not record one.
      echo: called with one line when a short name was resolved (e.g. `click.echo`).
      env: the dataset's env (a crlkit name or OGBench id), for files that name none; its goal
        contract gives the goal slice when the file records none.

    Raises:
      DatasetError: bad file, unknown name, or not present locally and not downloadable.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    text = str(spec)
    path = Path(text).expanduser()
    if text.startswith(minari_io.PREFIX) or path.is_dir() or path.suffix in (".hdf5", ".h5"):
        if split == "val":
            raise DatasetError(text, "Minari datasets have no val split")
        source = text if not path.exists() else path
        return minari_io.read_minari(source, goal_indices=goal_indices, env=env)
    if text.endswith(".npz"):
        target = path if split == "train" else ogbench_io.val_path(path)
        card = _card_for_file(path)
        env_name = crlkit_env(env or ogbench_env_id(path.name)) if env or not card else None
        if card:
            default_goal = card.goal_indices
        else:
            default_goal = env_goal_indices(env_name) if env_name else None
        metadata = _card_metadata(card) if card else ({"env": env_name} if env_name else None)
        return ogbench_io.read_npz(
            target,
            goal_indices=goal_indices,
            default_goal_indices=default_goal,
            metadata=metadata,
        )
    if path.exists():
        raise DatasetError(path, "unknown dataset format (expected NAME.npz or a Minari directory)")
    return _load_name(text, split, data_dir, goal_indices, echo)


def _load_name(
    name: str,
    split: str,
    data_dir: str | os.PathLike | None,
    goal_indices: Sequence[int] | None,
    echo: Callable[[str], Any] | None,
) -> Dataset:
    """Loads a catalog name (short or full), or an uncatalogued OGBench name."""
    cards = load_catalog()
    try:
        card, note = find_card(name, cards)
    except DatasetError:
        if not VERSIONED_NAMES.fullmatch(name):
            raise
        train = ogbench_io.fetch(name, data_dir, rebuild_hint=None)
        target = train if split == "train" else ogbench_io.val_path(train)
        return ogbench_io.read_npz(target, goal_indices=goal_indices)
    if note and echo is not None:
        echo(note)
    return load_card(card, split=split, data_dir=data_dir, goal_indices=goal_indices)


def load_card(
    card: Card,
    *,
    split: str = "train",
    data_dir: str | os.PathLike | None = None,
    goal_indices: Sequence[int] | None = None,
) -> Dataset:
    """Loads the data a card names, downloading OGBench data when missing and reachable."""
    if card.source == "minari":
        if split == "val":
            raise DatasetError(card.name, "Minari datasets have no val split")
        return minari_io.read_minari(
            card.name, goal_indices=goal_indices or card.goal_indices, rebuild_hint=card.collect
        )
    if card.source == "sample":
        train = catalog_dir() / card.files[0]
        if not train.is_file():
            raise DatasetError(train, f"sample file missing; rebuild it with: {card.collect}")
    else:
        train = ogbench_io.fetch(card.name, data_dir, rebuild_hint=card.collect)
    target = train if split == "train" else ogbench_io.val_path(train)
    return ogbench_io.read_npz(
        target,
        goal_indices=goal_indices,
        default_goal_indices=card.goal_indices,
        metadata=_card_metadata(card),
    )


def _card_for_file(path: Path) -> Card | None:
    """The card whose name matches an .npz file's stem (NAME.npz or NAME-val.npz), if any."""
    stem = path.name[: -len(".npz")]
    stem = stem[: -len("-val")] if stem.endswith("-val") else stem
    return load_catalog().get(stem)


def _card_metadata(card: Card) -> dict[str, Any]:
    """Layout metadata taken from a card."""
    return {
        "name": card.name,
        "source": card.source,
        "env": card.env,
        "ogbench_env_id": card.ogbench_env_id,
        "episode_length": card.episode_length,
    }


def ogbench_env_id(dataset_name: str) -> str:
    """OGBench's env id for one of its dataset names (the data-type word removed), else ''."""
    parts = Path(dataset_name).name.removesuffix(".npz").split("-")
    if len(parts) < 3 or not re.fullmatch(r"v\d+", parts[-1]):
        return ""
    return "-".join(parts[:-2] + parts[-1:])
