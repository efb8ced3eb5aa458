"""Root `crlkit` command.

Subcommands are imported only when they run (a lazy click group), so `crlkit --help` and bad-input
errors answer without importing JAX or MuJoCo.
"""

from __future__ import annotations

import importlib

import click

# name -> "module:attribute" of the click command; one line per subcommand.
COMMANDS: dict[str, str] = {
    "online": "crlkit.cli.online:online",
    "offline": "crlkit.cli.offline:offline",
    "collect": "crlkit.cli.collect:collect",
    "datasets": "crlkit.cli.datasets:datasets",
    "envs": "crlkit.cli.envs:envs",
    "bench": "crlkit.cli.bench:bench",
    "sweep": "crlkit.cli.sweep:sweep",
    "report": "crlkit.cli.report:report",
    "render": "crlkit.cli.render:render",
    "reproduce": "crlkit.cli.reproduce:reproduce",
}

SHORT_HELP: dict[str, str] = {
    "online": "Train CRL online in vectorized MuJoCo envs (the paper's regime).",
    "offline": "Train CRL on a fixed OGBench/Minari dataset, evaluated with OGBench's protocol.",
    "collect": "Roll out a policy in an env and write an OGBench or Minari dataset.",
    "datasets": "List the dataset catalog and which datasets are present locally.",
    "envs": "List the registered goal-conditioned envs.",
    "bench": "Benchmarks: learner speed/memory, env throughput.",
    "sweep": "Run a depth grid over the online and offline regimes.",
    "report": "Summarise a sweep directory into report.md and plots.",
    "render": "A run's policy as a video (.mp4/.gif) or a top-down trajectory map (.png).",
    "reproduce": "Reproduce the paper's Table 1 or OGBench's CRL scores; report beside them.",
}


class LazyGroup(click.Group):
    """A click group whose subcommands ({name: "module:attribute"}) are imported on first use."""

    def __init__(self, *args, lazy: dict[str, str], lazy_help: dict[str, str], **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy, self.lazy_help = lazy, lazy_help

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(n for n, target in self.lazy.items() if _importable(target))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = self.lazy.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(n, self.lazy_help.get(n, "")) for n in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _importable(target: str) -> bool:
    """True when the module behind a subcommand exists (found without importing it)."""
    return importlib.util.find_spec(target.split(":")[0]) is not None


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    lazy_help=SHORT_HELP,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(package_name="crlkit")
def cli() -> None:
    """crlkit: deep-residual contrastive RL, online (MuJoCo/MJX) and offline (OGBench/Minari)."""
