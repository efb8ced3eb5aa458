"""Episodes -> frames (mujoco.Renderer offscreen, a camera tracking the body) -> .mp4 / .gif.

mp4 goes through imageio's ffmpeg plugin with the encoder imageio-ffmpeg bundles (no system
ffmpeg needed); gif through Pillow. Frames stream to the mp4 encoder one at a time; a gif holds
its frames as palette images (a third of RGB) until Pillow writes them.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from crlkit.render.gl import NoGLBackend, select_gl_backend
from crlkit.render.outfile import atomic_output
from crlkit.render.rollout import Episode

# (distance m, elevation deg, azimuth deg) of the tracking camera per body: far enough to show
# a maze cell or two around the body and the goal marker when it is near.
CAMERAS = {"point": (20.0, -60.0, 90.0), "ant": (14.0, -50.0, 90.0), "humanoid": (7.0, -25.0, 90.0)}
TRACKED_BODY = "torso"  # every crlkit body's root
GOAL_GEOM = "target"  # the non-colliding marker every crlkit model carries


def render_frames(
    spec, model, episodes: Sequence[Episode], size: int, frame_skip: int = 1
) -> Iterator[np.ndarray]:
    """uint8 frames [size, size, 3] of each episode's states (every `frame_skip`-th), in order.

    `model` is the env's MjModel (`env.unwrapped.mj_model`); it is copied, never changed. The
    goal marker is moved to each episode's goal.
    """
    import mujoco

    select_gl_backend()
    model = copy.copy(model)
    model.vis.global_.offwidth = max(model.vis.global_.offwidth, size)
    model.vis.global_.offheight = max(model.vis.global_.offheight, size)
    target = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, GOAL_GEOM)
    data = mujoco.MjData(model)
    camera = _tracking_camera(mujoco, model, spec.body)
    try:
        renderer = mujoco.Renderer(model, size, size)
    except Exception as err:  # any GL failure (library missing, no device) reads the same here
        raise NoGLBackend(f"cannot create an offscreen GL context ({err})") from None
    # Shadows and floor reflections cost most of a CPU-rendered (llvmpipe/OSMesa) frame.
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
    try:
        for ep in episodes:
            if target >= 0:
                model.geom_pos[target, :2] = ep.goal
            for qpos in ep.qpos[::frame_skip]:
                data.qpos[:] = qpos
                mujoco.mj_forward(model, data)
                renderer.update_scene(data, camera)
                yield renderer.render()
    finally:
        renderer.close()


def _tracking_camera(mujoco, model, body: str):
    camera = mujoco.MjvCamera()
    camera.type = mujoco.mjtCamera.mjCAMERA_TRACKING
    camera.trackbodyid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, TRACKED_BODY)
    camera.distance, camera.elevation, camera.azimuth = CAMERAS[body]
    return camera


def write_video(path: Path, frames: Iterable[np.ndarray], fps: float) -> int:
    """Writes `frames` to `path` (.mp4 or .gif) atomically; returns the number of frames."""
    with atomic_output(path) as temp:
        if path.suffix.lower() == ".gif":
            return _write_gif(temp, frames, fps)
        return _write_mp4(temp, frames, fps)


def _write_mp4(path: Path, frames: Iterable[np.ndarray], fps: float) -> int:
    import imageio.v2 as imageio

    count = 0
    # yuv420p: the pixel format every player decodes; sizes are multiples of 16 (checked by the
    # caller), so imageio never rescales.
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

    images = [Image.fromarray(f).quantize(colors=128) for f in frames]
    if not images:
        raise ValueError("no frames to write")
    # GIF delays count in 10 ms units; 20 ms is the shortest most viewers honour.
    delay = max(20, int(round(100.0 / fps)) * 10)
    images[0].save(
        path, format="GIF", save_all=True, append_images=images[1:], duration=delay, loop=0,
        optimize=True,
    )
    return len(images)
