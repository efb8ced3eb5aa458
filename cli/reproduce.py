"""`crlkit reproduce TABLE`: run a published table's cells and put its numbers beside crlkit's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from crlkit.cli.helpers import command_line, echo_for, usage_errors
from crlkit.cli.options import build_config, config_options
from crlkit.cli.sweep import finish

from crlkit.experiments.launchers import SlurmConfig
from crlkit.experiments.reproduce import ReproduceConfig

PAPER_STEPS = 100_000_000  # the env steps the paper's cost figures are for
OGBENCH_STEPS = 1_000_000  # OGBench's SGD-step budget (crlkit offline's default there)
OGBENCH_DEPTH = 3  # OGBench's CRL agent: 3-layer MLPs


@click.command("reproduce")
@click.argument("table", metavar="TABLE")
@config_options(ReproduceConfig)
@click.option(
    "--dry-run",
    is_flag=True,
    help="List every cell with its command and estimated hours on this machine; run nothing.",
)
@click.option("--quiet", is_flag=True, help="No per-cell lines (errors still print).")
@config_options(SlurmConfig, "slurm")
def reproduce(table: str, dry_run: bool, quiet: bool, **options: Any) -> None:
    """Reproduce a published table: TABLE is table1 (the paper's 10 online tasks at depth 4 and
    64, its settings, time at goal) or ogbench-crl (OGBench's CRL agent on the navigate datasets
    present here, its budget and 5 x 50 evaluation episodes). Each row is a sweep in
    OUT/TABLE/<row>/ (re-running continues it, as crlkit sweep); OUT/TABLE/report.md puts the
    published numbers beside crlkit's. See docs/reproduce.md. E.g.

    \b
        crlkit reproduce table1 --dry-run
        crlkit reproduce table1 --rows ant-u4-maze --depths 4 --seeds 1 --steps 20000
    """
    from crlkit.experiments import reproduce as rep
    from crlkit.experiments.grid import SweepConfig
    from crlkit.experiments.launchers import make_launcher, read_slurm_file, visible_gpus

    command = command_line(click.get_current_context(), "reproduce")
    command = command.replace(f"crlkit reproduce table {table}", f"crlkit reproduce {table}", 1)
    echo = echo_for(quiet)
    cfg = usage_errors(lambda: build_config(ReproduceConfig, options))
    usage_errors(lambda: rep.check_table(table))
    rows = usage_errors(lambda: rep.plan_table(table, cfg))
    device = "gpu" if visible_gpus() else "cpu"
    if dry_run:
        print_dry_run(table, rows, device)
        return
    if table == "ogbench-crl":
        rows = usage_errors(lambda: rep.present_rows(rows, echo))
    slurm_file = options.get("slurm_config")
    slurm = usage_errors(
        lambda: build_config(
            SlurmConfig,
            options,
            SlurmConfig(**read_slurm_file(slurm_file)) if slurm_file else None,
            prefix="slurm",
        )
    )
    table_dir = Path(cfg.out) / table
    launch = SweepConfig(out=str(table_dir), launcher=cfg.launcher, jobs=cfg.jobs)
    name, launcher = usage_errors(lambda: make_launcher(launch, slurm, echo))
    result = usage_errors(
        lambda: rep.run_table(
            table, rows, launcher, name, command=command, device=device, echo=echo
        )
    )
    path = rep.write_table_report(table, rows, device, command)
    echo(f"report: {path}")
    click.echo(rep.report_text(table, rows, device, "").split("\n\n")[-2])
    finish(result, False, echo, None)


# ---------------------------------------------------------------------------------------------
# --dry-run: every cell, its command and its estimated hours


def cell_command(plan, out: Path) -> str:
    """The single-run command a cell equals (its run dir: `out`)."""
    run, cell = plan.run, plan.cell
    if cell.regime == "online":
        steps = "" if run.steps == PAPER_STEPS else f" --steps {run.steps}"
        return (
            f"crlkit online --preset paper --env {run.env} --depth {cell.depth} "
            f"--seed {cell.seed}{steps} --out {out}"
        )
    steps = f" --steps {run.steps}" if run.steps else ""
    depth = "" if cell.depth == OGBENCH_DEPTH else f" --depth {cell.depth}"
    return (
        f"crlkit offline --preset ogbench --dataset {run.dataset}{depth} "
        f"--seed {cell.seed}{steps} --out {out}"
    )


def print_dry_run(table: str, rows, device: str) -> None:
    """One line per cell, then the total and how the hours were estimated."""
    from crlkit.experiments.reproduce import load_reference

    estimate, basis = _estimator(table, device)
    total, cells, unknown = 0.0, 0, 0
    click.echo(f"{'row':<32} {'cell':<16} {'hours':>9}  command")
    for row in rows:
        for plan in row.plans():
            hours = estimate(plan)
            cells += 1
            if hours is None:
                unknown += 1
            else:
                total += hours
            shown = "–" if hours is None else f"{hours:,.2f}"
            command = cell_command(plan, Path(row.sweep.out) / plan.cell.name)
            click.echo(f"{row.row:<32} {plan.cell.name:<16} {shown:>9}  {command}")
    kind = "GPU" if device == "gpu" else "CPU"
    click.echo(
        f"{cells} cells ({len(rows)} rows); estimated total {total:,.1f} {kind} hours"
        + (f" ({unknown} cells without an estimate)" if unknown else "")
    )
    click.echo(f"estimate: {basis}")
    offline = [row.row for row in rows if row.offline is not None]
    if offline:
        from crlkit.data.catalog import find_card, local_path

        present = [r for r in offline if local_path(find_card(r)[0]) is not None]
        click.echo(
            f"datasets present here: {len(present)} of {len(offline)}"
            + (f" ({', '.join(present)})" if present else "")
            + "; rows without their files are skipped when run (see: crlkit datasets)"
        )
    click.echo(f"published numbers: {load_reference()[table]['source']}")


def _estimator(table: str, device: str):
    """(plan -> hours or None, one line saying how) for this machine."""
    from crlkit.experiments.reproduce import load_reference

    if device == "gpu":
        cost = load_reference()["table1"]["cost"]
        per_100m = {int(d): h for d, h in cost["gpu_hours"].items()}

        def from_paper(plan):
            if plan.cell.regime != "online":
                return None
            (d0, h0), (d1, h1) = sorted(per_100m.items())
            hours = h0 + (h1 - h0) * (plan.cell.depth - d0) / (d1 - d0)  # linear in depth
            return max(hours, 0.0) * plan.run.steps / cost["env_steps"]

        return from_paper, (
            f"the paper's GPU figures ({cost['source']}), scaled by each cell's "
            "steps, linear in depth between 4 and 64; OGBench publishes no cost"
        )
    rate = _matmul_rate()

    def from_flops(plan):
        flops = _sgd_flops(plan)
        return None if flops is None else flops / rate / 3600

    return from_flops, (
        f"SGD matmul FLOPs counted from the layer shapes (as crlkit bench "
        f"learner) at {rate / 1e9:,.0f} GFLOP/s measured here just now; physics, "
        "evaluation and compile not counted, so a lower bound on a CPU"
    )


def _sgd_flops(plan) -> float | None:
    """Matmul FLOPs of all the cell's SGD updates (None when its env or dataset is unknown)."""
    from crlkit.bench.learner import update_matmul_flops
    from crlkit.learner import Dims

    run = plan.run
    try:
        if plan.cell.regime == "online":
            from crlkit.envs.registry import make_spec

            spec = make_spec(run.env)
            dims = Dims(spec.state_dim, spec.goal_dim, spec.action_dim)
            updates = max(0, run.train_steps - run.prefill_train_steps) * run.updates_per_step
        else:
            from crlkit.data.catalog import find_card

            card = find_card(run.dataset)[0]
            dims = Dims(card.obs_dim, card.obs_dim, card.action_dim)
            updates = run.steps or OGBENCH_STEPS
    except (ValueError, ImportError):
        return None
    return updates * update_matmul_flops(plan.learner, dims, run.batch_size)["executed"]


def _matmul_rate(width: int = 256, batch: int = 512, seconds: float = 0.5) -> float:
    """float32 matmul FLOP/s of this machine on a [batch, width] x [width, width] chain."""
    import time

    import jax
    import jax.numpy as jnp

    def chain(x, w):
        return jax.lax.fori_loop(0, 50, lambda _, h: jnp.tanh(h @ w), x)

    step = jax.jit(chain)
    x, w = jnp.ones((batch, width)), jnp.full((width, width), 1e-3)
    step(x, w).block_until_ready()
    runs, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step(x, w).block_until_ready()
        runs += 1
    return runs * 50 * 2 * batch * width * width / (time.perf_counter() - t0)
