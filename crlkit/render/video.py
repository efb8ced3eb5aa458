"""Episodes -> frames (mujoco.Renderer offscreen, a camera tracking the body) -> .mp4 / .gif.

mp4 goes through imageio's ffmpeg plugin with the encoder imageio-ffmpeg bundles (no system
ffmpeg needed); gif through Pillow. Frames stream to the mp4 encoder one at a time; a gif holds
its frames as palette images (a third of RGB) until Pillow writes them.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from crlkit.files import atomic_path
from crlkit.render.gl import NoGLBackend, select_gl_backend
from crlkit.render.rollout import Episode

# (distance m, elevation deg, azimuth deg) of the tracking camera per body: far enough to show
# a maze cell or two around the body and the goal marker when it is near.
CAMERAS = {"point": (20.0, -60.0, 90.0), "ant": (14.0, -50.0, 90.0), "humanoid": (7.0, -35.0, 90.0)}
CAMERA_MODES = ("track", "overview")  # follow the torso / look down on the whole maze, fixed
TRACKED_BODY = "torso"  # every crlkit body's root
GOAL_GEOM = "target"  # the non-colliding marker every crlkit model carries


def render_frames(
    spec,
    model,
    episodes: Sequence[Episode],
    size: int,
    frame_skip: int = 1,
    camera: str = "track",
) -> Iterator[np.ndarray]:
    """uint8 frames [size, size, 3] of each episode's states (every `frame_skip`-th), in order.

    `model` is the env's MjModel (`env.unwrapped.mj_model`); it is copied, never changed. The
    goal marker is moved to each episode's goal. `camera`: one of CAMERA_MODES; a fixed
    overview also makes gifs far smaller (only the moving body changes between frames).
    """
    import mujoco

    select_gl_backend()
    model = copy.copy(model)
    model.vis.global_.offwidth = max(model.vis.global_.offwidth, size)
    model.vis.global_.offheight = max(model.vis.global_.offheight, size)
    target = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, GOAL_GEOM)
    # A marker fixed in the world is moved here; one on its own body (the paper's humanoid) is
    # placed by the env through joints, so the recorded qpos already carries it.
    movable = target >= 0 and model.geom_bodyid[target] == 0
    data = mujoco.MjData(model)
    if camera == "overview":
        view = _overview_camera(mujoco, model, spec, episodes)
    else:
        view = _tracking_camera(mujoco, model, spec.body)
    try:
        renderer = mujoco.Renderer(model, size, size)
    except Exception as err:  # any GL failure (library missing, no device) reads the same here
        raise NoGLBackend(f"cannot create an offscreen GL context ({err})") from None
    # Shadows and floor reflections cost most of a CPU-rendered (llvmpipe/OSMesa) frame.
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
    try:
        for ep in episodes:
            if movable:
                model.geom_pos[target, :2] = ep.goal_xy
            for qpos in ep.qpos[::frame_skip]:
                data.qpos[:] = qpos
                mujoco.mj_forward(model, data)
                renderer.update_scene(data, view)
                yield renderer.render()
    finally:
        renderer.close()


def _tracking_camera(mujoco, model, body: str):
    camera = mujoco.MjvCamera()
    camera.type = mujoco.mjtCamera.mjCAMERA_TRACKING
    camera.trackbodyid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, TRACKED_BODY)
    camera.distance, camera.elevation, camera.azimuth = CAMERAS[body]
    return camera


def _overview_camera(mujoco, model, spec, episodes: Sequence[Episode]):
    """A fixed camera looking straight down on the maze (open floors: on every path and goal)."""
    if spec.maze is not None:
        rows, cols = spec.maze.array.shape
        unit, (ox, oy) = spec.maze.unit, spec.maze.offset
        centre = np.array([(cols - 1) * unit / 2 - ox, (rows - 1) * unit / 2 - oy])
        half = max(rows, cols) * unit / 2
    else:
        points = np.concatenate([np.concatenate([e.xy, e.goal_xy[None]]) for e in episodes])
        lo, hi = points.min(axis=0), points.max(axis=0)
        centre, half = (lo + hi) / 2, float(np.max(hi - lo)) / 2 + 2.0
    camera = mujoco.MjvCamera()
    camera.type = mujoco.mjtCamera.mjCAMERA_FREE
    camera.lookat[:] = [centre[0], centre[1], 0.0]
    # Far enough that the square field of view (fovy) spans the maze's larger side.
    camera.distance = 1.05 * half / np.tan(np.radians(model.vis.global_.fovy) / 2)
    camera.elevation, camera.azimuth = -90.0, 90.0
    return camera


def write_video(path: Path, frames: Iterable[np.ndarray], fps: float) -> int:
    """Writes `frames` to `path` (.mp4 or .gif) atomically; returns the number of frames."""
    with atomic_path(path) as temp:
        if path.suffix.lower() == ".gif":
            return _write_gif(temp, frames, fps)
        return _write_mp4(temp, frames, fps)


def _write_mp4(path: Path, frames: Iterable[np.ndarray], fps: float) -> int:
    import imageio.v2 as imageio

    count = 0
    # yuv420p: the pixel format every player decodes; sizes are multiples of 16 (checked by the
    # caller), so imageio never rescales.
    with warnings.catch_warnings():
        # The encoder runs as a child process; Python's fork-after-JAX-threads warning does not
        # apply to a fork that execs ffmpeg at once.
        warnings.filterwarnings("ignore", r"os\.fork\(\) was called", RuntimeWarning)
        with imageio.get_writer(
            path, format="FFMPEG", mode="I", fps=fps, codec="libx264", pixelformat="yuv420p",
            macro_block_size=16, ffmpeg_log_level="error",
        ) as writer:
            for frame in frames:
                writer.append_data(frame)
                count += 1
    return count


def _write_gif(path: Path, frames: Iterable[np.ndarray], fps: float) -> int:
    from PIL import Image

    images: list = []
    for frame in frames:
        image = Image.fromarray(frame)
        # One palette (the first frame's) and no dithering: unchanged pixels keep their index
        # from frame to frame, so the encoder stores only what moved.
        palette = images[0] if images else image.quantize(colors=128)
        images.append(image.quantize(palette=palette, dither=Image.Dither.NONE))
    if not images:
        raise ValueError("no frames to write")
    # GIF delays count in 10 ms units; 20 ms is the shortest most viewers honour.
    delay = max(20, int(round(100.0 / fps)) * 10)
    images[0].save(
        path, format="GIF", save_all=True, append_images=images[1:], duration=delay, loop=0,
        optimize=True,
    )
    return len(images)
