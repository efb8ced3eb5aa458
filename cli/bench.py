"""`crlkit bench ...`: benchmarks. Each subcommand lives in its own module and is attached here."""

from __future__ import annotations

import click
from crlkit.cli.main import LazyGroup

BENCH_COMMANDS: dict[str, str] = {
    "learner": "crlkit.cli.bench_learner:bench_learner",
    "env": "crlkit.cli.bench_env:bench_env",
    "plan": "crlkit.cli.bench_plan:bench_plan",
}
BENCH_HELP: dict[str, str] = {
    "learner": "Compile time, step time, FLOP rate and peak memory of the CRL update per depth.",
    "env": "Env and physics steps/s of one env on one backend, against MuJoCo C.",
    "plan": "Memory (state + XLA scratch) and FLOPs per env step of a planned online run.",
}


@click.group(cls=LazyGroup, lazy=BENCH_COMMANDS, lazy_help=BENCH_HELP)
def bench() -> None:
    """Benchmarks (speed and memory are measured here, never in tests)."""
