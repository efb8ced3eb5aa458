"""The `mjx` physics backend: MuJoCo's JAX implementation (mujoco.mjx, impl='jax').

Pure JAX, so it jits, vmaps and scans anywhere; the fast path on a GPU. On a CPU it is slow for
maze models (every robot geom is checked against every wall box); use `native` there.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mujoco
from mujoco import mjx

from crlkit.envs.backends.base import PhysicsState, state_from_mjx_data


class MjxBackend:
    """PhysicsBackend over mujoco.mjx; construct with (mj_model, n_substeps)."""

    name = "mjx"

    def __init__(self, mj_model: mujoco.MjModel, n_substeps: int):
        if n_substeps < 1:
            raise ValueError(f"n_substeps must be >= 1, got {n_substeps}")
        self.n_substeps = int(n_substeps)
        self.model = mjx.put_model(mj_model, impl="jax")
        # A template mjx.Data; every call fills in the integration state from the pytree.
        self._template = mjx.make_data(mj_model, impl="jax")

    def _data(self, state: PhysicsState) -> mjx.Data:
        """mjx.Data carrying the integration state of `state` (derived quantities recomputed)."""
        return self._template.replace(
            qpos=state.qpos,
            qvel=state.qvel,
            act=state.act,
            time=state.time,
            qacc_warmstart=state.qacc_warmstart,
        )

    def _refresh(self, d: mjx.Data) -> mjx.Data:
        """Kinematics and position/velocity sensors for the current (qpos, qvel) (mj_step1's part
        the observations need); no collision or constraint solve."""
        d = mjx.kinematics(self.model, d)
        d = mjx.com_pos(self.model, d)
        d = mjx.com_vel(self.model, d)
        d = mjx.sensor_pos(self.model, d)
        return mjx.sensor_vel(self.model, d)

    def init(
        self, qpos: jax.Array, qvel: jax.Array, needed: jax.Array | None = None
    ) -> PhysicsState:
        """State for one env at (qpos, qvel), time 0, zero warm start, kinematics done.

        `needed` is ignored: under vmap every env's reset is computed on device anyway.
        """
        qpos = jnp.asarray(qpos, jnp.float32)
        d = self._refresh(self._template.replace(qpos=qpos, qvel=jnp.asarray(qvel, jnp.float32)))
        # mjx.kinematics writes normalised quaternions back into qpos; MuJoCo C leaves qpos as
        # given (ogbench observes the raw, noisy quaternion after reset), so keep the input.
        return state_from_mjx_data(d.replace(qpos=qpos))

    def step(self, state: PhysicsState, ctrl: jax.Array) -> PhysicsState:
        """Advance `n_substeps` physics steps with `ctrl` held; kinematics refreshed after."""
        d = self._data(state).replace(ctrl=jnp.asarray(ctrl, jnp.float32))

        def substep(d: mjx.Data, _) -> tuple[mjx.Data, None]:
            return mjx.step(self.model, d), None

        d, _ = jax.lax.scan(substep, d, None, length=self.n_substeps)
        return state_from_mjx_data(self._refresh(d))
