"""`crlkit datasets`: list the dataset catalog and which datasets are present locally."""

from __future__ import annotations

import dataclasses
import json

import click
from crlkit.cli.helpers import InputError


@click.command("datasets")
@click.argument("name", required=False)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="OGBench cache directory to check for presence (default ~/.ogbench/data).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the cards as JSON instead of a table.")
def datasets(name: str | None, data_dir: str | None, as_json: bool) -> None:
    """List the catalog (datasets/*.json) with local presence; with NAME, show that one card.

    NAME may be short (`antmaze-large` resolves to `antmaze-large-navigate-v0`).
    """
    from crlkit.data import catalog
    from crlkit.data.dataset import DatasetError

    try:
        cards = catalog.load_catalog()
        if name is not None:
            card, note = catalog.find_card(name, cards)
            if note:
                click.echo(note, err=True)
            cards = {card.name: card}
    except DatasetError as err:
        raise InputError(str(err)) from None
    rows = [(card, catalog.local_path(card, data_dir)) for card in cards.values()]
    if as_json or name is not None:
        payload = [
            {**dataclasses.asdict(card), "local_path": str(path) if path else None}
            for card, path in rows
        ]
        click.echo(json.dumps(payload if name is None else payload[0], indent=2))
        return
    click.echo(_table(rows))


def _table(rows: list) -> str:
    """A fixed-width table: name, source, env, episodes x length, rows, goal, local path."""
    header = ("name", "source", "env", "episodes x len", "rows", "goal", "local")
    lines = [header]
    for card, path in rows:
        lines.append(
            (
                card.name,
                card.source,
                card.env,
                f"{card.episodes} x {card.episode_length}",
                f"{card.transitions:,}",
                str(list(card.goal_indices)),
                str(path) if path else "-",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )
