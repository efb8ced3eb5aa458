"""Episodes -> frames (mujoco.Renderer offscreen, a camera that keeps the body and its goal in
view, a text overlay: episode, step, distance to the goal, reached) -> .mp4 / .gif.

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
    torso = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, TRACKED_BODY)
    if camera == "overview":
        view = _overview_camera(mujoco, model, spec, episodes)
    else:
        view = _framing_camera(mujoco, CAMERAS[spec.body][0])
    try:
        renderer = mujoco.Renderer(model, size, size)
    except Exception as err:  # any GL failure (library missing, no device) reads the same here
        raise NoGLBackend(f"cannot create an offscreen GL context ({err})") from None
    # Shadows and floor reflections cost most of a CPU-rendered (llvmpipe/OSMesa) frame.
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
    fovy = float(model.vis.global_.fovy)
    try:
        for number, ep in enumerate(episodes, start=1):
            if movable:
                model.geom_pos[target, :2] = ep.goal_xy
            for t in range(0, len(ep.qpos), frame_skip):
                data.qpos[:] = ep.qpos[t]
                mujoco.mj_forward(model, data)
                if camera != "overview":
                    _frame_body_and_goal(view, data.xpos[torso], ep.goal_xy, fovy, spec.body)
                renderer.update_scene(data, view)
                text = overlay_text(ep, t, number, len(episodes), spec.success_radius)
                yield draw_overlay(renderer.render(), text)
    finally:
        renderer.close()


def overlay_text(ep: Episode, t: int, number: int, episodes: int, radius: float) -> str:
    """The overlay of frame `t` of episode `number`: where the body stands against its goal."""
    distance = float(np.linalg.norm(ep.xy[t] - ep.goal_xy))
    status = ""
    if t == len(ep.xy) - 1:  # recordings end at the first success
        status = "  REACHED" if ep.success else "  not reached"
    return (
        f"episode {number}/{episodes}  step {t}/{ep.steps}\n"
        f"distance to goal {distance:.2f} m (success within {radius:g} m){status}"
    )


def draw_overlay(frame: np.ndarray, text: str) -> np.ndarray:
    """`frame` with `text` in its top left corner, white on a dark band (Pillow, which matplotlib
    already needs)."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image)
    size = max(10, frame.shape[0] // 32)
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one bitmap size
        font = ImageFont.load_default()
    box = draw.multiline_textbbox((6, 4), text, font=font)
    draw.rectangle((0, 0, frame.shape[1], box[3] + 4), fill=(20, 20, 20))
    draw.multiline_text((6, 4), text, fill=(255, 255, 255), font=font)
    return np.asarray(image)


def _framing_camera(mujoco, distance: float):
    camera = mujoco.MjvCamera()
    camera.type = mujoco.mjtCamera.mjCAMERA_FREE
    camera.distance = distance
    return camera


def _frame_body_and_goal(camera, body_pos, goal_xy, fovy: float, body: str) -> None:
    """Aim `camera` at the middle of the body and its goal, far enough back that both fit in the
    view (never closer than the body's own tracking distance), at the body's elevation."""
    base, elevation, azimuth = CAMERAS[body]
    mid = (np.asarray(body_pos[:2]) + np.asarray(goal_xy)) / 2
    half = float(np.linalg.norm(np.asarray(body_pos[:2]) - np.asarray(goal_xy))) / 2
    needed = 1.3 * half / np.tan(np.radians(fovy) / 2)
    camera.lookat[:] = [mid[0], mid[1], float(body_pos[2]) / 2]
    camera.distance = max(base, needed)
    camera.elevation, camera.azimuth = elevation, azimuth


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
            path,
            format="FFMPEG",
            mode="I",
            fps=fps,
            codec="libx264",
            pixelformat="yuv420p",
            macro_block_size=16,
            ffmpeg_log_level="error",
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
        path,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=delay,
        loop=0,
        optimize=True,
    )
    return len(images)
