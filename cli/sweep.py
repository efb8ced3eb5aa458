"""`crlkit sweep` (a depth grid over the online and offline regimes) and `crlkit report DIR`."""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from crlkit.config import LearnerConfig, click_options
from crlkit.train.offline import OfflineConfig
from crlkit.train.online import PRESETS, OnlineConfig

# Grid axes and per-cell values the sweep sets itself; every other field becomes a flag.
# --width and --online/offline-batch-size set the base value; --widths / --batch-sizes make axes.
ONLINE_SKIP = ("env", "seed")
OFFLINE_SKIP = ("dataset", "seed", "out")
LEARNER_SKIP = ("critic_depth", "actor_depth", "actor_loss", "bc_alpha")
ONLINE_PRESETS = ("quickstart", "paper")


def _int_list(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...]:
    """'4,16,64' -> (4, 16, 64); a usage error naming the bad item otherwise."""
    if value is None:
        return ()
    items = [v.strip() for v in value.split(",") if v.strip()]
    try:
        return tuple(int(v) for v in items)
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None


def _name_list(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _prefixed_options(
    cls: type, prefix: str, skip: tuple[str, ...], presets: dict[str, Any] | None = None
) -> Callable:
    """One `--<prefix>-<field>` option per field of a flat config dataclass (minus `skip`).

    `presets` ({name: config}) shows each preset's value as the default instead of the field's.
    """
    decorators = []
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = f"--{prefix}-{f.name.replace('_', '-')}"
        dest = f"{prefix}_{f.name}"
        shown = str(f.default)
        if presets:
            shown = ", ".join(f"{getattr(c, f.name)} ({n})" for n, c in presets.items())
        kwargs: dict[str, Any] = {
            "default": None,
            "help": f.metadata.get("help", ""),
            "show_default": shown,
        }
        if f.type in (bool, "bool"):
            no_flag = f"--{prefix}-no-{f.name.replace('_', '-')}"
            decorators.append(click.option(f"{flag}/{no_flag}", dest, **kwargs))
            continue
        if f.metadata.get("choices"):
            kwargs["type"] = click.Choice(f.metadata["choices"])
        else:
            kwargs["type"] = {"int": int, "float": float, "str": str}.get(str(f.type), str)
        decorators.append(click.option(flag, dest, **kwargs))

    def apply(fn: Callable) -> Callable:
        for decorator in reversed(decorators):
            fn = decorator(fn)
        return fn

    return apply


def _learner_options(command: click.Command) -> click.Command:
    """Learner flags minus the grid axes and per-regime settings (see LEARNER_SKIP)."""
    drop = (set(LEARNER_SKIP) - {"actor_depth"}) | {"depth"}
    command.params = [p for p in command.params if p.name not in drop]
    for param in command.params:
        if param.name == "actor_depth":  # the one learner flag that fixes a grid axis
            param.help = "Keep the actor at this depth in every cell (default: the cell's depth)."
            param.show_default = False
            continue
        values = {n: _learner_value(PRESETS[n][1], param.name) for n in ONLINE_PRESETS}
        if len({repr(v) for v in values.values()}) > 1:  # the presets disagree: show both
            param.show_default = ", ".join(f"{v} ({n})" for n, v in values.items())
    return command


def _learner_value(learner: LearnerConfig, name: str) -> Any:
    """A (possibly nested network) field of a learner config, or None."""
    for cfg in (learner, learner.network):
        if name in {f.name for f in dataclasses.fields(cfg)}:
            return getattr(cfg, name)
    return None


@_learner_options
@click.command("sweep")
@click.option("--env", default=None, help="Env of the online regime (see: crlkit envs).")
@click.option(
    "--dataset", default=None, help="Dataset of the offline regime (see: crlkit datasets)."
)
@click.option(
    "--regimes", default="online,offline", show_default=True, callback=_name_list,
    help="Comma-separated regimes to run: online, offline.",
)  # fmt: skip
@click.option(
    "--depths", default="4,16,64", show_default=True, callback=_int_list,
    help="Comma-separated depths (critic and actor; multiples of 4).",
)  # fmt: skip
@click.option(
    "--widths", default=None, callback=_int_list,
    help="Comma-separated widths to sweep, named -w<width> in cell names (a single width "
    "without the name part: --width).",
)  # fmt: skip
@click.option(
    "--batch-sizes", default=None, callback=_int_list,
    help="Comma-separated minibatch sizes to sweep in both regimes, named -b<batch> in cell "
    "names (a single size per regime: --online-batch-size, --offline-batch-size).",
)  # fmt: skip
@click.option("--seeds", type=int, default=3, show_default=True, help="Seeds 0..N-1 per cell.")
@click.option(
    "--preset", type=click.Choice(ONLINE_PRESETS), default="quickstart", show_default=True,
    help="Defaults of the online settings and the learner, as in crlkit online (the "
    "--online-* defaults below show both; learner width: "
    + ", ".join(f"{PRESETS[n][1].network.width} ({n})" for n in ONLINE_PRESETS)
    + ").",
)  # fmt: skip
@click.option(
    "--out", required=True, type=click.Path(file_okay=False, path_type=Path),
    help="Sweep directory; re-running the same command there continues the sweep.",
)  # fmt: skip
@click.option("--retry-failed", is_flag=True, help="Run cells that failed before again.")
@click.option(
    "--report/--no-report", default=True, show_default=True,
    help="Write report.md and the plots into --out when the sweep ends.",
)  # fmt: skip
@click.option("--quiet", is_flag=True, help="No per-cell lines (errors still print).")
@_prefixed_options(OnlineConfig, "online", ONLINE_SKIP, {n: PRESETS[n][0] for n in ONLINE_PRESETS})
@_prefixed_options(OfflineConfig, "offline", OFFLINE_SKIP)
@click_options(LearnerConfig)
def sweep(**options: Any) -> None:
    """Run a grid of CRL runs, online and offline, over depths (and widths, batch sizes, seeds).

    Every cell runs through the same code as `crlkit online` / `crlkit offline` into its own
    run dir, DIR/<regime>-d<depth>-s<seed>; seeds run one after another. Re-running the same
    command skips finished cells and resumes the one that was interrupted; a cell that fails
    (an error, or non-finite losses) is recorded in its failed.json and the sweep goes on.
    E.g. (docs/sweep.md):

    \b
        crlkit sweep --env pointmaze-medium --dataset pointmaze-medium-navigate-sample
        --depths 4,16 --seeds 2 --online-steps 102400 --offline-steps 2000 --out runs/sweep

    Online flags are --online-<name> (as in crlkit online), offline flags --offline-<name>
    (as in crlkit offline); learner flags are shared by both regimes.
    """
    from crlkit.train import report as report_lib
    from crlkit.train import sweep as sweep_lib

    ctx = click.get_current_context()
    command = _command_line(ctx)
    sweep_cfg, learner, online, offline = _configs(options)
    quiet = options["quiet"]
    echo = (lambda _: None) if quiet else (lambda line: click.echo(line, err=True))
    try:
        result = sweep_lib.run_sweep(
            sweep_cfg, learner, online, offline, command=command, echo=echo
        )
    except ValueError as err:  # SweepError and bad configs: one line, exit code 2
        raise click.UsageError(str(err)) from None
    if options["report"]:
        path = report_lib.write_report(result.out)
        echo(f"report: {path}")
    total = len(result.done) + len(result.skipped) + len(result.failed)
    click.echo(
        f"{total} cells in {result.out}: {len(result.done)} ran, {len(result.skipped)} were "
        f"done before, {len(result.failed)} failed"
    )
    if result.failed:
        first = next(iter(result.failed))
        raise click.ClickException(
            f"{len(result.failed)} cell(s) failed, e.g. {first}: {result.failed[first]} "
            f"(reasons in {result.out}/<cell>/failed.json)"
        )


def _configs(options: dict[str, Any]):
    """(SweepConfig, learner, online or None, offline or None) from the parsed flags."""
    from crlkit.train import online as online_lib
    from crlkit.train import sweep as sweep_lib

    online_base, learner_base = online_lib.PRESETS[options["preset"]]
    learner_flags = {k: options[k] for k in _learner_fields() if options.get(k) is not None}
    try:
        sweep_cfg = sweep_lib.SweepConfig(
            out=str(options["out"]),
            regimes=options["regimes"],
            depths=options["depths"],
            widths=options["widths"],
            batch_sizes=options["batch_sizes"],
            seeds=options["seeds"],
            actor_depth=options["actor_depth"] or 0,
            retry_failed=options["retry_failed"],
        )
        _check_axis_flags(options)
        learner = _with_flags(learner_base, learner_flags)
        online = offline = None
        if "online" in sweep_cfg.regimes:
            if not options["env"]:
                raise sweep_lib.SweepError("the online regime needs --env (see: crlkit envs)")
            flags = _prefixed(options, "online")
            online = dataclasses.replace(online_base, env=options["env"], **flags)
        if "offline" in sweep_cfg.regimes:
            if not options["dataset"]:
                raise sweep_lib.SweepError(
                    "the offline regime needs --dataset (see: crlkit datasets)"
                )
            offline = OfflineConfig(dataset=options["dataset"], **_prefixed(options, "offline"))
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    return sweep_cfg, learner, online, offline


def _check_axis_flags(options: dict[str, Any]) -> None:
    """A grid axis and the single-value flag of the same setting exclude each other."""
    pairs = [("widths", "width", "--widths", "--width")]
    pairs += [("batch_sizes", f"{r}_batch_size", "--batch-sizes", f"--{r}-batch-size")
              for r in ("online", "offline")]  # fmt: skip
    for axis, single, axis_flag, single_flag in pairs:
        if options.get(axis) and options.get(single) is not None:
            raise click.UsageError(f"give {axis_flag} (a grid axis) or {single_flag}, not both")


def _learner_fields() -> list[str]:
    from crlkit.config import NetworkConfig

    names = [f.name for f in dataclasses.fields(LearnerConfig) if f.name != "network"]
    names += [f.name for f in dataclasses.fields(NetworkConfig)]
    return [n for n in names if n not in LEARNER_SKIP]


def _with_flags(learner: LearnerConfig, flags: dict[str, Any]) -> LearnerConfig:
    """The learner with the given flags replacing its (nested) fields."""
    from crlkit.config import NetworkConfig

    net_names = {f.name for f in dataclasses.fields(NetworkConfig)}
    network = dataclasses.replace(
        learner.network, **{k: v for k, v in flags.items() if k in net_names}
    )
    top = {k: v for k, v in flags.items() if k not in net_names}
    return dataclasses.replace(learner, network=network, **top)


def _prefixed(options: dict[str, Any], prefix: str) -> dict[str, Any]:
    """{field: value} of the --<prefix>-<field> flags the user gave."""
    head = prefix + "_"
    return {k[len(head) :]: v for k, v in options.items() if k.startswith(head) and v is not None}


def _command_line(ctx: click.Context) -> str:
    """The flags given on the command line, as a `crlkit sweep ...` line (for sweep.json)."""
    parts = ["crlkit", "sweep"]
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


@click.command("report")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Where report.md and the PNGs go (default: DIRECTORY).",
)  # fmt: skip
def report(directory: Path, out: Path | None) -> None:
    """Summarise a sweep directory (or any folder of run dirs) into report.md and PNG plots.

    report.md holds a table regime x depth: success mean ± std over seeds, time at goal,
    parameters, wall seconds and env / SGD steps per second; the plots show final success vs
    depth per regime (the headline), learning curves per depth, and cost vs depth.
    """
    from crlkit.train import report as report_lib

    if not directory.exists():
        raise click.UsageError(f"{directory} does not exist")
    try:
        path = report_lib.write_report(directory, out)
    except report_lib.ReportError as err:
        raise click.UsageError(str(err)) from None
    click.echo(f"wrote {path} and {len(report_lib.PLOTS)} plots")
