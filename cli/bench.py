"""`crlkit bench ...`: benchmarks. Each subcommand lives in its own module and is attached here."""

from __future__ import annotations

import click
from crlkit.cli.main import LazyGroup

BENCH_COMMANDS: dict[str, str] = {
    "learner": "crlkit.cli.bench_learner:bench_learner",
    "env": "crlkit.cli.bench_env:bench_env",
}


class _BenchGroup(LazyGroup):
    def list_commands(self, ctx):
        from crlkit.cli.main import _importable

        return sorted(n for n, t in BENCH_COMMANDS.items() if _importable(t))

    def get_command(self, ctx, name):
        import importlib

        target = BENCH_COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx, formatter):
        click.Group.format_commands(self, ctx, formatter)


@click.group(cls=_BenchGroup)
def bench() -> None:
    """Benchmarks (speed and memory are measured here, never in tests)."""
