"""Seeing behaviour: a run's policy as a video (.mp4/.gif) or a top-down trajectory map (.png).

- `outputs.py`: `render` (the `crlkit render` command), `write_outputs` (eval.mp4 and
  trajectories.png into a run dir), `record_run` (episodes of a run's checkpoint).
- `rollout.py`: deterministic-actor episodes (`Episode`: body xy, joint positions, goal, success).
- `video.py`: frames through `mujoco.Renderer` offscreen -> mp4 (imageio-ffmpeg) / gif (Pillow).
- `trajmap.py`: `plot_trajectory_map(ax, spec, episodes)`, matplotlib only.
- `value_map.py`: `compute_value_map` (the critic's energy over the floor for one goal),
  `plot_value_map`, `write_value_png` (`crlkit render --kind value`).
- `gl.py`: picks MUJOCO_GL (egl, then osmesa) for headless machines.
- `policy.py`: a run dir's env and actor (the only importer of run-directory helpers).

Names are imported on first use, so `import crlkit.render` pulls in neither JAX nor MuJoCo and
`gl.select_gl_backend()` can still set MUJOCO_GL before MuJoCo is first imported.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "render": "outputs",
    "write_outputs": "outputs",
    "record_run": "outputs",
    "Recording": "outputs",
    "Episode": "rollout",
    "record_episodes": "rollout",
    "plot_trajectory_map": "trajmap",
    "write_trajectory_png": "trajmap",
    "ValueMap": "value_map",
    "compute_value_map": "value_map",
    "plot_value_map": "value_map",
    "write_value_png": "value_map",
    "select_gl_backend": "gl",
    "NoGLBackend": "gl",
    "RenderError": "outfile",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'crlkit.render' has no attribute {name!r}")
    return getattr(importlib.import_module(f"crlkit.render.{_EXPORTS[name]}"), name)
