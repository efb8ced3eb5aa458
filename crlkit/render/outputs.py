"""What `crlkit render`, the training loops (`--video`) and the sweep report call."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import jax

from crlkit.render.outfile import RenderError, check_output
from crlkit.render.policy import load_run_policy
from crlkit.render.rollout import BODIES, Episode, record_episodes

DEFAULT_EPISODES = 4
DEFAULT_SIZE = 480
VIDEO_EPISODES = 1  # the --video hook's eval.mp4: the map's first episode
VIDEO_FILE = "eval.mp4"
MAP_FILE = "trajectories.png"


@dataclasses.dataclass(frozen=True)
class Recording:
    """Episodes of one run's checkpoint, with what drawing them needs."""

    run_dir: Path
    step: int
    regime: str
    env: Any
    episodes: list[Episode]

    @property
    def spec(self):
        """The env's EnvSpec (name, maze, body, control step)."""
        return self.env.spec


def record_run(
    run_dir: str | os.PathLike,
    episodes: int = DEFAULT_EPISODES,
    seed: int = 0,
    task: int | None = None,
    step: int | None = None,
) -> Recording:
    """Deterministic episodes of `run_dir`'s newest (or `step`) checkpoint, on fresh goals drawn
    from `seed` or on OGBench task `task`; RenderError (one line) for a bad run, task or count.

    Runs recorded with the same seed and task face the same starts and goals (for side-by-side
    comparisons, e.g. across depths).
    """
    if episodes < 1:
        raise RenderError(f"--episodes must be >= 1, got {episodes}")
    policy = load_run_policy(run_dir, step)
    if policy.env.spec.body not in BODIES:
        raise RenderError(
            f"{policy.run_dir}: env {policy.env.spec.name!r} ({policy.env.spec.body}) cannot be "
            f"rendered; crlkit render draws {', '.join(BODIES)} bodies"
        )
    check_task(policy.env.spec, task)
    key = jax.random.PRNGKey(seed)
    recorded = record_episodes(
        policy.env, policy.nets, policy.params, key, episodes, task, policy.goal_observation
    )
    return Recording(policy.run_dir, policy.step, policy.regime, policy.env, recorded)


def check_task(spec, task: int | None) -> None:
    """RenderError unless `task` is None or one of the env's fixed evaluation tasks."""
    if task is None:
        return
    if spec.num_tasks == 0:
        raise RenderError(f"env {spec.name!r} has no OGBench evaluation tasks; omit --task")
    if not 1 <= task <= spec.num_tasks:
        raise RenderError(f"unknown task {task} for env {spec.name!r}; valid: 1..{spec.num_tasks}")


def write_recording(
    recording: Recording,
    out: Path,
    size: int = DEFAULT_SIZE,
    frame_skip: int = 1,
    camera: str = "track",
) -> Path:
    """Writes `recording` to `out`: a video (.mp4/.gif, needs OpenGL) or a trajectory map (.png)."""
    spec = recording.spec
    if out.suffix.lower() == ".png":
        from crlkit.render.trajmap import write_trajectory_png

        title = f"{spec.name}, {recording.regime} run, step {recording.step:,}"
        reached = sum(ep.success for ep in recording.episodes)
        title += f": {reached}/{len(recording.episodes)} reached"
        return write_trajectory_png(out, spec, recording.episodes, title)
    from crlkit.render.video import render_frames, write_video

    check_video_options(size, frame_skip, camera)
    model = recording.env.unwrapped.mj_model
    frames = render_frames(spec, model, recording.episodes, size, frame_skip, camera)
    write_video(out, frames, fps=1.0 / (spec.control_dt * frame_skip))
    return out


def check_video_options(size: int, frame_skip: int, camera: str = "track") -> None:
    """RenderError unless the frame size is a multiple of 16 in [16, 2048], frame_skip >= 1 and
    the camera is known."""
    from crlkit.render.video import CAMERA_MODES

    if camera not in CAMERA_MODES:
        raise RenderError(f"unknown camera {camera!r}; valid: {', '.join(CAMERA_MODES)}")
    if size % 16 or not 16 <= size <= 2048:
        raise RenderError(f"--size must be a multiple of 16 in 16..2048 (video codecs), got {size}")
    if frame_skip < 1:
        raise RenderError(f"--frame-skip must be >= 1, got {frame_skip}")


def render(
    run_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    step: int | None = None,
    task: int | None = None,
    episodes: int = DEFAULT_EPISODES,
    seed: int = 0,
    size: int = DEFAULT_SIZE,
    frame_skip: int = 1,
    camera: str = "track",
) -> Path:
    """`crlkit render`: a run's behaviour to `out` (.mp4, .gif or .png); returns the path.

    Every input is checked before any rollout; RenderError (one line) for bad input, NoGLBackend
    when a video is asked for and no OpenGL backend works. `out` is replaced atomically.
    """
    path = check_output(out)
    if path.suffix.lower() != ".png":
        check_video_options(size, frame_skip, camera)
    recording = record_run(run_dir, episodes, seed, task, step)
    return write_recording(recording, path, size, frame_skip, camera)


def write_outputs(
    run_dir: str | os.PathLike,
    video: bool = True,
    png: bool = True,
    episodes: int = DEFAULT_EPISODES,
    seed: int = 0,
    size: int = DEFAULT_SIZE,
    video_episodes: int = VIDEO_EPISODES,
) -> list[Path]:
    """Writes eval.mp4 and/or trajectories.png of the run's newest checkpoint into `run_dir`.

    One recording feeds both files: the png draws its `episodes` episodes, the video the first
    `video_episodes` of them (a full-length episode is ~1,000 frames; software OpenGL reads one
    480-pixel frame back in ~30 ms). The png is written first, so it exists even when the video
    then fails with NoGLBackend (no OpenGL on this machine). Returns the paths written.
    """
    run = Path(run_dir)
    recording = record_run(run, episodes, seed)
    written = []
    if png:
        written.append(write_recording(recording, run / MAP_FILE))
    if video:
        shown = dataclasses.replace(recording, episodes=recording.episodes[:video_episodes])
        written.append(write_recording(shown, run / VIDEO_FILE, size))
    return written
