"""Headless OpenGL for `mujoco.Renderer`: pick MUJOCO_GL (egl, then osmesa) before rendering.

MuJoCo reads MUJOCO_GL once, when `mujoco` is first imported, and on Linux falls back to GLFW,
which needs a display. `select_gl_backend()` sets MUJOCO_GL when the user has not, and when
`mujoco` was already imported under another choice (a training loop, a test session) points its
GL context class at the chosen backend, which works as long as PyOpenGL is not yet bound to
another platform.
"""

from __future__ import annotations

import functools
import importlib
import os
import subprocess
import sys
import warnings

CANDIDATES = ("egl", "osmesa")  # EGL uses a GPU when there is one; OSMesa is CPU-only Mesa
INSTALL_HINT = (
    "install one (Debian/Ubuntu: apt-get install -y libegl1 libgl1-mesa-dri, or libosmesa6) "
    "or set MUJOCO_GL; the .png trajectory map needs no OpenGL"
)
_PROBE = "import mujoco; c = mujoco.GLContext(16, 16); c.make_current(); c.free()"


class NoGLBackend(RuntimeError):
    """No OpenGL backend can make an offscreen context on this machine."""


@functools.cache
def select_gl_backend() -> str:
    """The MUJOCO_GL backend to render with (set in os.environ); NoGLBackend when none works."""
    chosen = os.environ.get("MUJOCO_GL", "").strip().lower()
    if not chosen:
        chosen = next((c for c in CANDIDATES if _probe(c)), "")
        if not chosen:
            raise NoGLBackend(
                f"no OpenGL backend for offscreen rendering (tried MUJOCO_GL="
                f"{', '.join(CANDIDATES)}); {INSTALL_HINT}"
            )
        os.environ["MUJOCO_GL"] = chosen
    if "mujoco" in sys.modules and chosen in CANDIDATES:
        _rebind_context(chosen)
    return chosen


def _probe(backend: str) -> bool:
    """True when `backend` makes a GL context, tried in a child process.

    A child, because a failed EGL attempt in this process would leave PyOpenGL bound to EGL
    (PYOPENGL_PLATFORM is fixed at its first import), and OSMesa could no longer be tried.
    """
    env = {**os.environ, "MUJOCO_GL": backend, "PYOPENGL_PLATFORM": backend}
    try:
        with warnings.catch_warnings():
            # A fork that execs Python at once is safe even after JAX started its threads.
            warnings.filterwarnings("ignore", r"os\.fork\(\) was called", RuntimeWarning)
            done = subprocess.run(
                [sys.executable, "-c", _PROBE], env=env, capture_output=True, timeout=120
            )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _rebind_context(backend: str) -> None:
    """Points an already imported mujoco's GL context class at `backend`'s."""
    from mujoco.rendering.classic import gl_context

    current = getattr(gl_context, "GLContext", None)
    if current is not None and current.__module__ == f"mujoco.{backend}":
        return
    platform = os.environ.get("PYOPENGL_PLATFORM", "")
    if "OpenGL" in sys.modules and platform.lower() != backend:
        raise NoGLBackend(
            f"PyOpenGL is already bound to platform {platform or 'default'!r} in this process; "
            f"set MUJOCO_GL={backend} before starting Python"
        )
    try:
        context = importlib.import_module(f"mujoco.{backend}").GLContext
    except (ImportError, AttributeError) as err:
        raise NoGLBackend(f"MUJOCO_GL={backend} does not load ({err}); {INSTALL_HINT}") from None
    gl_context.GLContext = context
