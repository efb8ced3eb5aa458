"""`crlkit render`: a run's policy as a video (.mp4/.gif) or a top-down trajectory map (.png)."""

from __future__ import annotations

from pathlib import Path

import click

OUT = click.Path(dir_okay=False, path_type=Path)


class RenderInputError(click.ClickException):
    """Bad input (output path, run dir, task, option): one line, exit code 2."""

    exit_code = 2


@click.command("render")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", type=OUT, required=True,
              help="Output file: .mp4 or .gif (a video, needs OpenGL) or .png (trajectory map).")
@click.option("--step", type=int, default=None,
              help="Checkpoint step to load (default: the newest).")
@click.option("--task", type=int, default=None,
              help="OGBench evaluation task 1..5 of maze envs (default: fresh random goals).")
@click.option("--episodes", type=int, default=4, show_default=True, help="Episodes to record.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the starts and goals (the actor itself is deterministic).")
@click.option("--size", type=int, default=480, show_default=True,
              help="Video frame side in pixels (a multiple of 16).")
@click.option("--frame-skip", type=int, default=1, show_default=True,
              help="Render every n-th control step (playback stays real-time).")
@click.option("--camera", type=click.Choice(["track", "overview"]), default="track",
              show_default=True, help="track: follow the body; overview: the whole maze from "
              "above, fixed (much smaller gifs).")  # fmt: skip
def render(run_dir: Path, out: Path, step: int | None, task: int | None, episodes: int,
           seed: int, size: int, frame_skip: int, camera: str) -> None:  # fmt: skip
    """Roll out RUN_DIR's trained actor (deterministic) and write what it does to --out.

    Works for `crlkit online` and `crlkit offline` run directories of point, ant and humanoid
    envs. An episode ends at its first success, a fall, or the episode limit. Videos use a
    camera tracking the body (or a fixed overview) with the goal marker drawn; the png shows
    every episode's path from its start to its goal, green when it got there. Headless:
    MUJOCO_GL is chosen automatically (egl, then osmesa). See docs/render.md.

    \b
        crlkit render RUN_DIR --out agent.mp4
        crlkit render RUN_DIR --out agent.gif --size 240 --camera overview
        crlkit render RUN_DIR --out map.png --task 3 --episodes 8
    """
    # Imported here, and the GL backend chosen before JAX and MuJoCo are imported: MuJoCo reads
    # MUJOCO_GL once, and the probe's child process is best started before JAX's threads.
    from crlkit.render import gl
    from crlkit.render.outfile import RenderError, check_output

    try:
        path = check_output(out)
        if path.suffix.lower() != ".png":
            gl.select_gl_backend()
        from crlkit.render import outputs

        written = outputs.render(
            run_dir, path, step=step, task=task, episodes=episodes, seed=seed, size=size,
            frame_skip=frame_skip, camera=camera,
        )
    except RenderError as err:
        raise RenderInputError(str(err)) from None
    except gl.NoGLBackend as err:
        raise click.ClickException(str(err)) from None
    click.echo(str(written))
