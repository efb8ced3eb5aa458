"""The physics-backend contract every env is written against.

Env code (crlkit/envs/) never calls mujoco.mjx, mujoco C or warp directly: it holds a
`PhysicsBackend` built from an `mujoco.MjModel` and moves a `PhysicsState` pytree through it.
Four backends implement it: `mjx` (JAX implementation of mujoco.mjx), `native` (MuJoCo C on CPU
threads behind a jax callback), `warp` (MJX with impl='warp') and `spring` (Brax's spring
pipeline; the paper's bodies only, whose env code never edits qpos/qvel between steps).

Contract (all three backends must satisfy it; tests check them against each other):
  * `init(qpos, qvel, needed=None)` -> PhysicsState for ONE env (callers vmap), with forward
    kinematics done, so `xpos` (and `sensordata`) are valid. `needed` is an optional [] bool hint:
    False says the caller will discard the result (the auto-reset of an env that is not done, which
    vmap computes anyway), and a backend may then skip the physics work (`native` does: its reset
    callback processes only the needed rows); the result is then finite but unspecified.
  * `step(state, ctrl)` -> PhysicsState after `n_substeps` physics steps (the env's frame skip) with
    `ctrl` held, then kinematics and sensors refreshed for the new (qpos, qvel) so `xpos` and
    `sensordata` describe the returned state (as ogbench's humanoid does with mj_step1).
    Pure: the same state and ctrl give the same next state, on any backend, under jit, vmap and
    lax.scan. Everything that determines the next state rides in the pytree.
  * Env code may edit `qpos`/`qvel` of a state (e.g. the point env moves the body before stepping)
    and pass it back to `step`; backends must honour those edits.
"""

from __future__ import annotations

from typing import Any, Protocol

import jax
from flax import struct


@struct.dataclass
class PhysicsState:
    """Integration state of one env plus the kinematics env code reads.

    Attributes:
      qpos: [nq] generalised positions.
      qvel: [nv] generalised velocities.
      act: [na] actuator activations (empty for the bodies we ship, kept for completeness).
      time: [] simulation time.
      qacc_warmstart: [nv] solver warm start; part of MuJoCo's state, so it rides along to keep
        the step a pure function of the pytree.
      xpos: [nbody, 3] world positions of body frames, consistent with qpos.
      sensordata: [nsensordata] sensor readings consistent with (qpos, qvel) (position and
        velocity stages, as after mj_forward). The humanoid observation reads its
        `subtreelinvel` sensor here. Defaults to None for backends that predate the field.
      extra: a backend's own integration state when (qpos, qvel, ...) do not determine the next
        step (spring: Brax's maximal-coordinate link state); None for the MuJoCo backends.
    """

    qpos: jax.Array
    qvel: jax.Array
    act: jax.Array
    time: jax.Array
    qacc_warmstart: jax.Array
    xpos: jax.Array
    sensordata: jax.Array | None = None
    extra: Any = None


def state_from_mjx_data(d) -> PhysicsState:
    """The contract's state read off an mjx.Data (either MJX implementation: jax or warp)."""
    return PhysicsState(
        qpos=d.qpos,
        qvel=d.qvel,
        act=d.act,
        time=d.time,
        qacc_warmstart=d.qacc_warmstart,
        xpos=d.xpos,
        sensordata=d.sensordata,
    )


class PhysicsBackend(Protocol):
    """What env code may call. Construct with (mj_model: mujoco.MjModel, n_substeps: int)."""

    name: str
    n_substeps: int

    def init(
        self, qpos: jax.Array, qvel: jax.Array, needed: jax.Array | None = None
    ) -> PhysicsState:
        """State for one env at (qpos, qvel), time 0, zero warm start, kinematics done."""
        ...

    def step(self, state: PhysicsState, ctrl: jax.Array) -> PhysicsState:
        """Advance `n_substeps` physics steps with `ctrl` held; returns the new state."""
        ...
