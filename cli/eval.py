"""`crlkit eval`: evaluate a run's checkpoint (online or offline) without training or rendering."""

from __future__ import annotations

from pathlib import Path

import click
from crlkit.cli.helpers import echo_for, usage_errors


@click.command("eval")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--step",
    type=int,
    default=None,
    help="Checkpoint step to evaluate (env steps online, SGD steps offline; default: the newest).",
)
@click.option(
    "--episodes",
    type=int,
    default=None,
    help="Fresh-goal episodes and episodes per task (default: the run's eval settings).",
)
@click.option(
    "--tasks",
    "which",
    flag_value="tasks",
    help="Only OGBench's fixed evaluation tasks (maze envs).",
)
@click.option(
    "--fresh-goals",
    "which",
    flag_value="fresh-goals",
    help="Only random start/goal pairs (offline: in the dataset's crlkit env).",
)
@click.option(
    "--seed",
    type=int,
    default=None,
    help="Seed of the evaluation (default: the run's seed, which reproduces the run's "
    "own evaluation at that step, e.g. its final one in summary.json).",
)
@click.option(
    "--json",
    "json_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the metrics to this JSON file (atomically).",
)
@click.option("--quiet", is_flag=True, help="No notes on stderr; the result line still prints.")
def eval_run(
    run_dir: Path,
    step: int | None,
    episodes: int | None,
    which: str | None,
    seed: int | None,
    json_file: Path | None,
    quiet: bool,
) -> None:
    """Evaluate RUN_DIR's trained actor (deterministic) and print one line of results.

    By default the run's own evaluation is repeated: online runs on fresh goals (and OGBench's
    tasks where the env has them), offline runs with OGBench's task protocol, with the run's
    seed and episode counts, so the newest checkpoint of a finished run prints the success of
    its final evaluation. Time at goal is shown in the paper's units, steps out of the episode
    length. See docs/runs.md.

    \b
        crlkit eval runs/pointmaze-arena-d4-s0-20250101-120000
        crlkit eval RUN_DIR --step 100000 --episodes 50 --fresh-goals --json eval.json
    """
    from crlkit import files
    from crlkit.train.evaluate_run import evaluate_run, result_line

    result = usage_errors(
        lambda: evaluate_run(
            run_dir,
            step=step,
            episodes=episodes,
            which=which or "default",
            seed=seed,
            echo=echo_for(quiet),
        )
    )
    if json_file is not None:
        files.atomic_write_json(json_file, result)
    click.echo(result_line(result))
