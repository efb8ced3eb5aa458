"""Root `crlkit` command.

Subcommands are imported only when they run (a lazy click group), so `crlkit --help` and bad-input
errors answer without importing JAX or MuJoCo.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from crlkit import exit_codes
from crlkit.exit_codes import RunStopped

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
    "eval": "crlkit.cli.eval:eval_run",
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
    "eval": "Evaluate a run's checkpoint (success, steps at goal, per-task success).",
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

    def invoke(self, ctx: click.Context) -> Any:
        """Run the subcommand; a run stopped on purpose, a dead peer, a failed write or a bad
        environment variable ends in one line and its exit code (crlkit/exit_codes.py)."""
        try:
            return super().invoke(ctx)
        except RunStopped as err:
            quiet_stop = err.exit_code in (exit_codes.PREEMPTED, exit_codes.INTERRUPTED)
            stop(str(err) if quiet_stop else f"Error: {err}", err.exit_code)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as err:
            line, code = crash_line(err)
            if line is None:
                raise
            stop(line, code)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(n, self.lazy_help.get(n, "")) for n in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def stop(line: str, code: int) -> None:
    """Print `line` on stderr and exit with `code`."""
    click.echo(line, err=True)
    sys.exit(code)


def crash_line(err: Exception) -> tuple[str | None, int]:
    """(one line, exit code) for an error the user's machine caused, or (None, 0) for a bug.

    Checked only when something failed, and only with modules the command already imported,
    so `--help` and quick commands never import JAX for it.
    """
    if "jax" in sys.modules:
        from crlkit.train import parallel

        if parallel.peer_failure(err):
            parallel.exit_peer_lost(str(err))  # prints its line and leaves with PEER_LOST
        platforms = os.environ.get("JAX_PLATFORMS", "").strip()
        if platforms and (reason := backend_failure()):
            return (
                f"Error: JAX_PLATFORMS={platforms!r} names a backend this machine lacks "
                f"({reason}); unset it or name one that is installed (e.g. cpu)",
                exit_codes.BAD_INPUT,
            )
    from crlkit import files  # NumPy, which a failed command has imported anyway

    dataset_error = getattr(sys.modules.get("crlkit.data.dataset"), "DatasetError", None)
    if dataset_error is not None and isinstance(err, dataset_error):
        return f"Error: {err}", exit_codes.BAD_INPUT
    failed = files.find_io_error(err)
    if failed is not None:
        return f"Error: could not write: {files.describe_os_error(failed)}", exit_codes.IO_FAILED
    return None, 0


def backend_failure() -> str | None:
    """Why JAX cannot start the backends JAX_PLATFORMS names (first line), or None if it can."""
    import jax

    try:
        jax.devices()
    except Exception as err:  # jax raises RuntimeError or a bare AssertionError, by version
        text = str(err).strip()
        return text.splitlines()[0][:160] if text else "JAX could not start it"
    return None


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
