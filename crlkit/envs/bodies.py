"""OGBench's point, ant and humanoid bodies (the paper's are in paper_bodies.py): model from
ogbench's XML assets, reset, control, observation.

Each body reproduces the matching `ogbench.locomaze` class for a given physics state: the same
observation (order and dims), the same control step (frame skip 5; the point body moves its qpos by
0.2 * action before stepping, as ogbench's PointEnv does) and the same reset distribution (the
humanoid's penetration-rejection loop excepted, see `Humanoid.reset_qpos_qvel`).
"""

from __future__ import annotations

import dataclasses
import os
from typing import ClassVar

import jax
import jax.numpy as jnp
import mujoco

from crlkit.envs.backends.base import PhysicsState

FRAME_SKIP = 5  # every ogbench locomaze body steps physics 5 times per control step


def ogbench_asset(name: str) -> str:
    """Path of one of the XML models shipped in the installed ogbench package."""
    import ogbench

    return os.path.join(os.path.dirname(ogbench.__file__), "locomaze", "assets", name)


@dataclasses.dataclass(frozen=True)
class Body:
    """A robot: how to build its model, reset it, drive it and observe it (static, hashable)."""

    name: str
    xml: str
    action_dim: int
    frame_skip: int = FRAME_SKIP  # physics steps per control step
    goal_indices: tuple[int, ...] = (0, 1)  # state entries that form the goal
    family: str = "ogbench"  # 'ogbench' (ogbench's robots) or 'paper' (the paper's Brax robots)
    # Whether `observe` sees the goal marker (then `GoalEnv.with_goal` moves it with the goal).
    observes_goal_marker: ClassVar[bool] = False

    def load_spec(self) -> mujoco.MjSpec:
        """The body's MjSpec from ogbench's asset (a fresh copy each call)."""
        return mujoco.MjSpec.from_file(ogbench_asset(self.xml))

    def build_spec(self, maze: bool) -> mujoco.MjSpec:
        """The body's MjSpec with the (non-colliding) goal marker; `maze`: walls will be added."""
        from crlkit.envs.maze import add_target

        spec = self.load_spec()
        add_target(spec)
        return spec

    def observe(
        self, physics: PhysicsState, ids: dict[str, int], ctrl: jax.Array | None = None
    ) -> jax.Array:
        """The env state vector for a physics state (`ctrl`: the control just applied)."""
        raise NotImplementedError

    def goal_of_xy(self, goal_xy: jax.Array) -> jax.Array:
        """The goal vector for a goal position drawn by a task sampler (xy)."""
        return goal_xy

    def achieved_goal(self, physics: PhysicsState) -> jax.Array:
        """The goal-space position of the body (compared with the goal for success)."""
        return self.xy(physics)

    def place(self, qpos: jax.Array, start_xy: jax.Array, goal_xy: jax.Array) -> jax.Array:
        """qpos with the body at `start_xy` (and any goal marker joints at `goal_xy`)."""
        return self.set_xy(qpos, start_xy)

    def keep_control_terms(self, state: jax.Array, previous: jax.Array) -> jax.Array:
        """`state` (observed without a ctrl) with its entries that depend on the last control
        taken from `previous`, the state observed after that control (none for most bodies)."""
        return state

    def with_model(self, model: mujoco.MjModel) -> Body:
        """This body with facts of its compiled model recorded (none for ogbench bodies)."""
        return self

    def state_dim(self, model: mujoco.MjModel) -> int:
        """Size of `observe`'s vector for a compiled model."""
        raise NotImplementedError

    def xy(self, physics: PhysicsState) -> jax.Array:
        """Planar position of the body (ogbench's get_xy)."""
        return physics.qpos[:2]

    def set_xy(self, qpos: jax.Array, xy: jax.Array) -> jax.Array:
        """qpos with the planar position replaced (ogbench's set_xy)."""
        return qpos.at[:2].set(xy)

    def control(self, physics: PhysicsState, action: jax.Array) -> tuple[PhysicsState, jax.Array]:
        """(physics state to step from, ctrl held during the step) for an action."""
        return physics, action

    def reset_qpos_qvel(self, key: jax.Array, qpos0: jax.Array, model: mujoco.MjModel):
        """Initial (qpos, qvel) before the start xy is placed."""
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Point(Body):
    """ogbench PointEnv: a sphere on two slide joints; the action moves qpos directly."""

    def observe(self, physics: PhysicsState, ids: dict[str, int], ctrl=None) -> jax.Array:
        return physics.qpos

    def state_dim(self, model: mujoco.MjModel) -> int:
        return model.nq

    def control(self, physics: PhysicsState, action: jax.Array) -> tuple[PhysicsState, jax.Array]:
        # ogbench: qpos += 0.2 * action, qvel = 0, then mj_step with the actuators left at 0.
        moved = physics.replace(qpos=physics.qpos + 0.2 * action, qvel=jnp.zeros_like(physics.qvel))
        return moved, jnp.zeros_like(action)

    def reset_qpos_qvel(self, key, qpos0, model):
        kq, kv = jax.random.split(key)
        qpos = qpos0 + jax.random.uniform(kq, qpos0.shape, minval=-0.1, maxval=0.1)
        qvel = 0.1 * jax.random.normal(kv, (model.nv,))
        return qpos, qvel


@dataclasses.dataclass(frozen=True)
class Ant(Body):
    """ogbench AntEnv: observation qpos (15) + qvel (14); reset noise 0.1."""

    def observe(self, physics: PhysicsState, ids: dict[str, int], ctrl=None) -> jax.Array:
        return jnp.concatenate([physics.qpos, physics.qvel])

    def state_dim(self, model: mujoco.MjModel) -> int:
        return model.nq + model.nv

    def reset_qpos_qvel(self, key, qpos0, model):
        kq, kv = jax.random.split(key)
        qpos = qpos0 + jax.random.uniform(kq, qpos0.shape, minval=-0.1, maxval=0.1)
        qvel = 0.1 * jax.random.normal(kv, (model.nv,))
        return qpos, qvel


def quat_to_mat(quat: jax.Array) -> jax.Array:
    """Rotation matrix [3, 3] of a quaternion (w, x, y, z), normalised first as MuJoCo does."""
    w, x, y, z = quat / jnp.linalg.norm(quat)
    return jnp.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


HUMANOID_LIMBS = ("left_hand", "left_foot", "right_hand", "right_foot")  # ogbench's order


@dataclasses.dataclass(frozen=True)
class Humanoid(Body):
    """ogbench HumanoidEnv (DMC humanoid): 69-dim observation from qpos, body positions, sensors.

    Reset as ogbench's: random orientation and random joint angles within their ranges.
    """

    def load_spec(self) -> mujoco.MjSpec:
        spec = super().load_spec()
        # Only the torso's subtreelinvel enters the observation; the other 33 sensors (forces,
        # touch) never affect dynamics, so they are dropped to save work.
        for sensor in list(spec.sensors):
            if sensor.name != "torso_subtreelinvel":
                spec.delete(sensor)
        return spec

    def observe(self, physics: PhysicsState, ids: dict[str, int], ctrl=None) -> jax.Array:
        # Torso is the free root body without a body quat, so xmat[torso] = mat(qpos[3:7]).
        torso_frame = quat_to_mat(physics.qpos[3:7])
        torso_pos = physics.xpos[ids["torso"]]
        limbs = [(physics.xpos[ids[n]] - torso_pos) @ torso_frame for n in HUMANOID_LIMBS]
        return jnp.concatenate(
            [
                physics.qpos[:2],
                physics.qpos[7:],
                physics.xpos[ids["head"], 2:3],
                *limbs,
                torso_frame[2],
                physics.sensordata[0:3],
                physics.qvel,
            ]
        )

    def state_dim(self, model: mujoco.MjModel) -> int:
        # xy, joint angles, head height, 4 limbs x 3, torso z-axis, COM velocity, qvel
        return 2 + (model.nq - 7) + 1 + 12 + 3 + 3 + model.nv

    def reset_qpos_qvel(self, key, qpos0, model):
        kq, kv, kj = jax.random.split(key, 3)
        # ogbench: quat ~ normalised U[0, 1]^4, hinge angles ~ U(range), qvel ~ 0.1 N(0, 1).
        quat = jax.random.uniform(kq, (4,))
        low = jnp.asarray(model.jnt_range[1:, 0], dtype=jnp.float32)
        high = jnp.asarray(model.jnt_range[1:, 1], dtype=jnp.float32)
        joints = jax.random.uniform(kj, low.shape, minval=low, maxval=high)
        qpos = qpos0.at[3:7].set(quat / jnp.linalg.norm(quat)).at[7:].set(joints)
        qvel = 0.1 * jax.random.normal(kv, (model.nv,))
        return qpos, qvel

    def torso_height(self, physics: PhysicsState) -> jax.Array:
        """Height of the torso (free joint z)."""
        return physics.qpos[2]


BODIES: dict[str, Body] = {
    "point": Point(name="point", xml="point.xml", action_dim=2),
    "ant": Ant(name="ant", xml="ant.xml", action_dim=8),
    "humanoid": Humanoid(name="humanoid", xml="humanoid.xml", action_dim=21),
}


def body_ids(model: mujoco.MjModel) -> dict[str, int]:
    """Body name -> id for every named body of a compiled model."""
    names = (mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, i) for i in range(model.nbody))
    return {n: i for i, n in enumerate(names) if n}
