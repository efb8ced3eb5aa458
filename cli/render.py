"""`crlkit render`: a run's policy as a video (.mp4/.gif) or a top-down trajectory map (.png), or
its critic's value map (.png, `--kind value`)."""

from __future__ import annotations

from pathlib import Path

import click

OUT = click.Path(dir_okay=False, path_type=Path)
KINDS = ("rollout", "value")


def _goal_xy(ctx: click.Context, param: click.Parameter, value: str | None):
    """click callback: 'X,Y' -> (x, y) floats."""
    if value is None:
        return None
    try:
        x, y = (float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected X,Y (two numbers), got {value!r}") from None
    return x, y


class RenderInputError(click.ClickException):
    """Bad input (output path, run dir, task, option): one line, exit code 2."""

    exit_code = 2


@click.command("render")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--out",
    type=OUT,
    required=True,
    help="Output file: .mp4 or .gif (a video, needs OpenGL) or .png (trajectory map).",
)
@click.option(
    "--kind",
    type=click.Choice(KINDS),
    default="rollout",
    show_default=True,
    help="rollout: what the actor does (video or map, by the suffix); value: the "
    "critic's value of every place for one goal, a heat map (.png).",
)
@click.option(
    "--goal",
    default=None,
    callback=_goal_xy,
    metavar="X,Y",
    help="Goal floor position of --kind value (default: --task's goal, else a goal "
    "drawn from --seed).",
)
@click.option(
    "--step", type=int, default=None, help="Checkpoint step to load (default: the newest)."
)
@click.option(
    "--task",
    type=int,
    default=None,
    help="OGBench evaluation task 1..5 of maze envs (default: fresh random goals).",
)
@click.option("--episodes", type=int, default=4, show_default=True, help="Episodes to record.")
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the starts and goals (the actor itself is deterministic).",
)
@click.option(
    "--size",
    type=int,
    default=480,
    show_default=True,
    help="Video frame side in pixels (a multiple of 16).",
)
@click.option(
    "--frame-skip",
    type=int,
    default=1,
    show_default=True,
    help="Render every n-th control step (playback stays real-time).",
)
@click.option(
    "--camera",
    type=click.Choice(["track", "overview"]),
    default="track",
    show_default=True,
    help="track: follow the body; overview: the whole maze from above, fixed (much smaller gifs).",
)
def render(
    run_dir: Path,
    out: Path,
    kind: str,
    goal: tuple[float, float] | None,
    step: int | None,
    task: int | None,
    episodes: int,
    seed: int,
    size: int,
    frame_skip: int,
    camera: str,
) -> None:
    """Roll out RUN_DIR's trained actor (deterministic) and write what it does to --out.

    Works for `crlkit online` and `crlkit offline` run directories of point, ant and humanoid
    envs. An episode ends at its first success, a fall, or the episode limit. Videos use a
    camera tracking the body (or a fixed overview) with the goal marker drawn; the png shows
    every episode's path from its start to its goal, green when it got there. Headless:
    MUJOCO_GL is chosen automatically (egl, then osmesa). `--kind value` draws the critic's
    energy to one goal over the floor (maze and open-floor envs), with one rollout on top.
    See docs/render.md.

    \b
        crlkit render RUN_DIR --out agent.mp4
        crlkit render RUN_DIR --out agent.gif --size 240 --camera overview
        crlkit render RUN_DIR --out map.png --task 3 --episodes 8
        crlkit render RUN_DIR --out value.png --kind value --goal 12,8
    """
    # Imported here, and the GL backend chosen before JAX and MuJoCo are imported: MuJoCo reads
    # MUJOCO_GL once, and the probe's child process is best started before JAX's threads.
    from crlkit.render import gl
    from crlkit.render.outfile import RenderError, check_output

    try:
        path = check_output(out)
        if kind == "value":
            click.echo(str(_value_map(run_dir, path, goal, task, seed, step)))
            return
        if goal is not None:
            raise RenderError("--goal is for --kind value; rollouts take --task or --seed")
        if path.suffix.lower() != ".png":
            gl.select_gl_backend()
        from crlkit.render import outputs

        written = outputs.render(
            run_dir,
            path,
            step=step,
            task=task,
            episodes=episodes,
            seed=seed,
            size=size,
            frame_skip=frame_skip,
            camera=camera,
        )
    except RenderError as err:
        raise RenderInputError(str(err)) from None
    except gl.NoGLBackend as err:
        raise click.ClickException(str(err)) from None
    click.echo(str(written))


def _value_map(run_dir: Path, path: Path, goal, task: int | None, seed: int, step: int | None):
    from crlkit.render.outfile import RenderError
    from crlkit.render.value_map import compute_value_map, write_value_png

    if path.suffix.lower() != ".png":
        raise RenderError(f"--kind value writes a .png; got {str(path)!r}")
    value_map = compute_value_map(run_dir, goal_xy=goal, task=task, seed=seed, step=step)
    return write_value_png(path, value_map)
