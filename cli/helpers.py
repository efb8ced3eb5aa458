"""Small pieces every command shares: one-line input errors, status echo, list flags."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click


class InputError(click.ClickException):
    """Bad user input found after parsing (a dataset, env or run dir): one line, exit code 2."""

    exit_code = 2


def usage_errors(fn: Callable[[], Any]) -> Any:
    """Run `fn`; a ValueError (bad flag value, env, dataset, run dir) becomes exit code 2."""
    try:
        return fn()
    except ValueError as err:
        if "jax" in sys.modules:  # a multi-process run whose peer died: one line, exit 69
            from crlkit.train import parallel

            if parallel.peer_failure(err):
                parallel.exit_peer_lost(str(err))
        raise InputError(str(err)) from None


class StoppedError(click.ClickException):
    """A run that stopped early on purpose (crlkit.exit_codes.RunStopped): one line, its code."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def training(fn: Callable[[], Any]) -> Any:
    """Run a training call: bad input is exit code 2 (`usage_errors`); a run stopped by a
    non-finite loss, a stop signal or Ctrl-C is its one line and `RunStopped.exit_code`."""
    from crlkit.exit_codes import RunStopped

    try:
        return usage_errors(fn)
    except RunStopped as err:
        raise StoppedError(str(err), err.exit_code) from None


START_OVER_HELP = (
    "With --resume: when every checkpoint of the run is unreadable, start it again "
    "from step 0 (without this flag such a resume is refused)."
)


QUIET_HELP = (
    "No progress bar and no notes (compiling, evaluating, ...); the one status line per log "
    "interval (steps, throughput, losses, last success) and errors still print."
)


def echo_for(quiet: bool) -> Callable[[str], None]:
    """Where status lines go: stderr, or nowhere with --quiet."""
    return (lambda _: None) if quiet else (lambda line: click.echo(line, err=True))


def int_list(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...]:
    """click callback: '4,16,64' -> (4, 16, 64); a usage error naming the bad value otherwise."""
    if value is None:
        return ()
    items = [v.strip() for v in value.split(",") if v.strip()]
    try:
        return tuple(int(v) for v in items)
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None


def name_list(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    """click callback: 'online,offline' -> ('online', 'offline')."""
    return tuple(v.strip() for v in value.split(",") if v.strip())


def command_line(ctx: click.Context, name: str) -> str:
    """The flags given on the command line, as a `crlkit <name> ...` line (to record a run)."""
    import shlex

    parts = ["crlkit", name]
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name)
        if source is not click.core.ParameterSource.COMMANDLINE or not param.opts:
            continue
        value = ctx.params[param.name]
        if isinstance(param, click.Option) and param.is_flag:
            parts.append(param.opts[0] if value else param.secondary_opts[0])
            continue
        raw = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
        parts += [param.opts[0], shlex.quote(raw)]
    return " ".join(parts)


VIDEO_HELP = (
    "After the final evaluation, also write trajectories.png (4 episodes) and eval.mp4 (the "
    "first of them) of the trained actor into the run dir (crlkit render draws more; the video "
    "needs OpenGL)."
)


def write_run_media(run_dir: str, echo: Callable[[str], None]) -> None:
    """eval.mp4 and trajectories.png into a finished run dir; without OpenGL, the png and a note."""
    import jax

    from crlkit.render import NoGLBackend, RenderError, write_outputs

    if jax.process_index() != 0:  # multi-host: the run dir is process 0's
        return
    try:
        written = write_outputs(run_dir)
    except NoGLBackend as err:
        click.echo(f"wrote {run_dir}/trajectories.png; no video: {err}", err=True)
        return
    except RenderError as err:
        click.echo(f"no video or map: {err}", err=True)
        return
    echo("wrote " + ", ".join(str(p) for p in written))
