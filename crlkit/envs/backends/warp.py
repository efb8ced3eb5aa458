"""`warp` backend: MJX with impl='warp' (NVIDIA Warp kernels called from JAX; CUDA GPU or CPU).

Optional: needs the `warp` extra (`pip install 'crlkit[warp]'`, packages warp-lang and
mujoco-warp). Same pytree contract as `mjx`: every step rebuilds an mjx.Data from the
PhysicsState, so the step is a pure function of the state.

Warp allocates contact buffers for all envs of a batch together (`naconmax`, across every env of a
vmapped call), and the batch size is unknown when the model is put on the device, so the buffer is
sized for `max_envs` envs up front.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mujoco

from crlkit.envs.backends.base import PhysicsState, state_from_mjx_data

INSTALL_HINT = "pip install 'crlkit[warp]'"
# Contacts one env may hold at once; warp's own default for a single world.
CONTACTS_PER_ENV = 48


def require_warp():
    """Imports mujoco.mjx with Warp available; one-line ValueError naming the extra otherwise."""
    try:
        import warp  # noqa: F401
    except ImportError as err:
        raise ValueError(f"backend 'warp' needs warp-lang: {INSTALL_HINT}") from err
    from mujoco import mjx
    from mujoco.mjx import warp as mjx_warp

    if not mjx_warp.WARP_INSTALLED:
        raise ValueError(f"backend 'warp' could not load warp; reinstall with {INSTALL_HINT}")
    return mjx


class WarpBackend:
    """PhysicsBackend over mujoco.mjx with impl='warp'; construct with (mj_model, n_substeps).

    Args:
      mj_model: the compiled model.
      n_substeps: physics steps per `step` call, with ctrl held.
      max_envs: the most envs one vmapped step may carry (sizes the shared contact buffer).
    """

    name = "warp"

    def __init__(self, mj_model: mujoco.MjModel, n_substeps: int, max_envs: int = 8192):
        if n_substeps < 1:
            raise ValueError(f"n_substeps must be >= 1, got {n_substeps}")
        mjx = require_warp()
        import warp

        # Warp otherwise prints a line per kernel module it loads (hundreds per model).
        warp.config.quiet = True
        warp.config.log_level = max(warp.config.log_level, warp.LOG_WARNING)
        self._mjx = mjx
        self.n_substeps = int(n_substeps)
        self.max_envs = int(max_envs)
        try:
            self.model = mjx.put_model(mj_model, impl="warp")
            self._template = mjx.make_data(
                mj_model, impl="warp", naconmax=CONTACTS_PER_ENV * self.max_envs
            )
        except NotImplementedError as err:
            raise ValueError(
                f"backend 'warp' cannot run this model ({err}); use --backend native"
            ) from None
        # Models without sensors need only body positions after a step; sensors need forward.
        self._has_sensors = mj_model.nsensordata > 0

    def _refresh(self, d):
        """xpos (and sensors, when the model has any) for the current (qpos, qvel)."""
        if self._has_sensors:
            return self._mjx.forward(self.model, d)
        return self._mjx.kinematics(self.model, d)

    def init(
        self, qpos: jax.Array, qvel: jax.Array, needed: jax.Array | None = None
    ) -> PhysicsState:
        """State for one env at (qpos, qvel), time 0, zero warm start, kinematics done.

        `needed` is ignored: under vmap every env's reset is computed on device anyway.
        """
        d = self._template.replace(
            qpos=jnp.asarray(qpos, jnp.float32), qvel=jnp.asarray(qvel, jnp.float32)
        )
        return state_from_mjx_data(self._refresh(d))

    def step(self, state: PhysicsState, ctrl: jax.Array) -> PhysicsState:
        """Advance `n_substeps` physics steps with `ctrl` held; kinematics refreshed after."""
        d = self._template.replace(
            qpos=state.qpos,
            qvel=state.qvel,
            act=state.act,
            time=state.time,
            qacc_warmstart=state.qacc_warmstart,
            ctrl=jnp.asarray(ctrl, jnp.float32),
        )

        def substep(d, _):
            return self._mjx.step(self.model, d), None

        d, _ = jax.lax.scan(substep, d, None, length=self.n_substeps)
        return state_from_mjx_data(self._refresh(d))
