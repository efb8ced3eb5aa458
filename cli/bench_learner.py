"""`crlkit bench learner`: speed and memory of the CRL update across depths."""

from __future__ import annotations

import click


def _parse_depths(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a comma-separated list of integers (e.g. 4,64,256,1024)"
        ) from None


@click.command("learner")
@click.option(
    "--depths",
    default="4,64,256,1024",
    show_default=True,
    callback=_parse_depths,
    help="Comma-separated depths (actor and critic), each a positive multiple of 4.",
)
@click.option("--width", type=int, default=256, show_default=True, help="Units per layer.")
@click.option(
    "--batch-size",
    "--batch",
    "batch",
    type=int,
    default=512,
    show_default=True,
    help="Minibatch size (as `crlkit bench plan` and the training commands spell it; "
    "--batch is the old name).",
)
@click.option(
    "--repeats", type=int, default=10, show_default=True, help="Timed steps per depth (median)."
)
@click.option(
    "--remat",
    type=click.Choice(["auto", "on", "off"]),
    default="auto",
    show_default=True,
    help="Block rematerialisation; auto: on at every depth on a CPU (faster there), "
    "from depth 256 elsewhere.",
)
@click.option(
    "--compare-unrolled",
    is_flag=True,
    help="Also time the Python-unrolled twin of the network (compile time explodes with depth).",
)
@click.option(
    "--unrolled-max-depth",
    type=int,
    default=256,
    show_default=True,
    help="With --compare-unrolled, skip the unrolled twin above this depth.",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=float,
    default=1800.0,
    show_default=True,
    help="Seconds allowed per depth subprocess; slower runs are reported as timed out.",
)
@click.option(
    "--loop",
    type=click.Choice(["update", "offline", "online"]),
    default="update",
    show_default=True,
    help="update: time the jitted learner step. offline / online: run a few steps of that loop's "
    "own command per depth (same learner) and report its process's peak RSS and wall time.",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write the results (one object per depth, plus the matmul peak and Gram timing) here.",
)
def bench_learner(json_path: str | None, loop: str, **options) -> None:
    """Compile time, step time, FLOP rate vs matmul peak, and peak memory per depth; with --loop,
    peak memory of a few steps of the real offline or online loop per depth.

    Each depth runs in a fresh subprocess so its peak memory is its own.
    """
    from crlkit.bench.learner import BenchLearnerConfig, run_bench
    from crlkit.bench.loop import LoopBenchConfig, run_loop_bench
    from crlkit.files import atomic_write_json

    try:
        cfg = BenchLearnerConfig(**options)
    except ValueError as err:
        raise click.UsageError(str(err)) from None

    click.echo(f"width {cfg.width}, batch {cfg.batch}, depths {','.join(map(str, cfg.depths))}")
    if loop == "update":
        result = run_bench(cfg, log=click.echo)
    else:
        lcfg = LoopBenchConfig(loop, cfg.depths, cfg.width, cfg.batch, cfg.timeout_s)
        result = run_loop_bench(lcfg, log=click.echo)
    if json_path:
        atomic_write_json(json_path, result)
        click.echo(f"wrote {json_path}")
