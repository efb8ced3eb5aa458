"""`spring` backend: Brax's spring pipeline (the physics the paper trained on), optional extra.

Brax integrates links in maximal coordinates with joints as stiff springs, so (qpos, qvel) do not
determine the next step: the whole Brax state rides in `PhysicsState.extra`, and qpos/qvel are
read from it (Brax's inverse kinematics) after every step. The system is loaded from the same
compiled MuJoCo model the other backends step (`brax.io.mjcf.load_model`), so the time step,
gears and Brax's spring parameters (the model's custom numerics) are the env's.

Sensors: only frame position / linear velocity / angular velocity sensors of bodies are supported
(what the paper's humanoid observation reads), computed from Brax's link frames as MuJoCo does.
"""

from __future__ import annotations

import copy

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from crlkit.envs.backends.base import PhysicsState

_FRAME_SENSORS = (
    int(mujoco.mjtSensor.mjSENS_FRAMEPOS),
    int(mujoco.mjtSensor.mjSENS_FRAMELINVEL),
    int(mujoco.mjtSensor.mjSENS_FRAMEANGVEL),
)
INSTALL_HINT = "backend 'spring' needs the brax package: pip install 'crlkit[brax]'"


def _import_brax():
    """(brax.io.mjcf, brax.spring.pipeline, brax.math); one-line ImportError naming the extra."""
    try:
        import contextlib
        import io
        import warnings

        # brax warns that it is unmaintained on every import, and its import of mujoco.mjx.warp
        # prints "Failed to import warp" and "... mujoco_warp" on stdout where Warp is absent
        # (spring never uses Warp).
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            from brax import math
            from brax.io import mjcf
            from brax.spring import pipeline
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    return mjcf, pipeline, math


def _check_sensors(m: mujoco.MjModel) -> None:
    for i in range(m.nsensor):
        kind, obj = int(m.sensor_type[i]), int(m.sensor_objtype[i])
        if kind not in _FRAME_SENSORS or obj != int(mujoco.mjtObj.mjOBJ_BODY):
            name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_SENSOR, i)
            raise ValueError(
                f"spring backend: sensor {name!r} is not a body frame sensor; valid: framepos, "
                "framelinvel, frameangvel of bodies (use --backend native or mjx)"
            )


class SpringBackend:
    """PhysicsBackend over Brax's spring pipeline; construct with (mj_model, n_substeps)."""

    name = "spring"

    def __init__(self, mj_model: mujoco.MjModel, n_substeps: int):
        if n_substeps < 1:
            raise ValueError(f"n_substeps must be >= 1, got {n_substeps}")
        mjcf, self._pipeline, self._math = _import_brax()
        _check_sensors(mj_model)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # load_model writes into the model's range arrays: give it a copy.
            self.sys = mjcf.load_model(copy.deepcopy(mj_model))
        self.n_substeps = int(n_substeps)
        self._nbody = mj_model.nbody
        self._sensors = (
            np.asarray(mj_model.sensor_type, np.int32),
            np.asarray(mj_model.sensor_objid, np.int32) - 1,  # Brax drops the world body
        )
        self._ipos = jnp.asarray(mj_model.body_ipos[1:], jnp.float32)

    def init(
        self, qpos: jax.Array, qvel: jax.Array, needed: jax.Array | None = None
    ) -> PhysicsState:
        """State for one env at (qpos, qvel), time 0 (`needed` is ignored)."""
        q = jnp.asarray(qpos, jnp.float32)
        s = self._pipeline.init(self.sys, q, jnp.asarray(qvel, jnp.float32))
        return self._physics(s, jnp.zeros((), jnp.float32))

    def step(self, state: PhysicsState, ctrl: jax.Array) -> PhysicsState:
        """Advance `n_substeps` spring steps with `ctrl` held."""
        ctrl = jnp.asarray(ctrl, jnp.float32)

        def substep(s, _):
            return self._pipeline.step(self.sys, s, ctrl), None

        s, _ = jax.lax.scan(substep, state.extra, None, length=self.n_substeps)
        return self._physics(s, state.time + self.n_substeps * self.sys.opt.timestep)

    def _physics(self, s, time: jax.Array) -> PhysicsState:
        """The contract's state for a Brax spring state (qpos/qvel from Brax's q/qd)."""
        xpos = jnp.concatenate([jnp.zeros((1, 3), s.x.pos.dtype), s.x.pos])
        nv = s.qd.shape[0]
        return PhysicsState(
            qpos=s.q,
            qvel=s.qd,
            act=jnp.zeros((0,), jnp.float32),
            time=jnp.asarray(time, jnp.float32),
            qacc_warmstart=jnp.zeros((nv,), jnp.float32),
            xpos=xpos,
            sensordata=self._sensordata(s),
            extra=s,
        )

    def _sensordata(self, s) -> jax.Array:
        """Body frame sensors as MuJoCo computes them: com position, com linear velocity and
        angular velocity in the world frame."""
        kinds, links = self._sensors
        if kinds.size == 0:
            return jnp.zeros((0,), jnp.float32)
        offset = jax.vmap(self._math.rotate)(self._ipos, s.x.rot)  # link origin -> com, world
        com = s.x.pos + offset
        com_vel = s.xd.vel + jnp.cross(s.xd.ang, offset)
        table = {_FRAME_SENSORS[0]: com, _FRAME_SENSORS[1]: com_vel, _FRAME_SENSORS[2]: s.xd.ang}
        return jnp.concatenate([table[int(k)][int(b)] for k, b in zip(kinds, links, strict=True)])
