"""The paper's Franka Panda tasks: `arm-push-easy`, `arm-push-hard`, `arm-binpick-hard`.

Same API as `api.GoalEnv` (pure reset/step on one env, fresh goal every reset, EnvSpec goal
contract), on any physics backend. Values from the paper's envs/manipulation/arm_*.py:
action 5 in [-1, 1] = absolute ctrl targets of joints 1, 2, 4, 6 (affine onto the ranges below;
joints 3, 5 held at 0 and 7 at 1.4487) + gripper (> 0 closed: ctrl 0, else open: ctrl 255);
state 17 = cube xyz, 7 joint angles, link-7 origin position and velocity, finger distance;
goal 3 = target cube xyz; success: cube within 0.1 (strict, as the paper); 25 x 0.002 s per step.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import mujoco

from crlkit.envs.api import BatchMixin, EnvDefaults, EnvEntry, EnvSpec, EnvState, check_action
from crlkit.envs.arm_model import Scene, build_scene
from crlkit.envs.backends import make_backend
from crlkit.envs.backends.base import PhysicsState

BODY = "panda"
FRAME_SKIP = 25  # the paper's ArmEnvs.n_frames
TIMESTEP = 0.002
STATE_DIM = 17
SUCCESS_RADIUS = 0.1
# Also reported by the paper (metrics success_easy / success_hard); from `dist_to_goal`.
EASY_RADIUS, HARD_RADIUS = 0.3, 0.03
# Table 1's runs used the training script's episode_length 1000; the env files' own (50 / 80) is
# `ArmTask.recommended_length`, available as make(..., episode_length=N).
EPISODE_LENGTH = 1000
# Ctrl at action -1 and +1 for the 7 arm actuators (the paper's min_value / max_value).
CTRL_LOW = (0.3491, 0.0, 0.0, -3.0718, 0.0, 2.3562, 1.4487)
CTRL_HIGH = (2.7925, 1.48353, 0.0, -0.0698, 0.0, 3.7525, 1.4487)
ACTION_JOINTS = (0, 1, 3, 5)  # joints 1, 2, 4, 6 (0-based)
ARM_HOME = (1.571, 0.742, 0.0, -1.571, 0.0, 3.054, 1.449, 0.04, 0.04)  # + both fingers


@dataclasses.dataclass(frozen=True)
class ArmTask:
    """One task: its scene and how the cube start and the goal are drawn."""

    scene: Scene
    cube_noise: float  # cube xy = scene.cube_start xy + U(-n, n)
    goal_centre: tuple[float, float, float]
    goal_noise: float  # goal xy = goal_centre xy + U(-n, n); z fixed
    recommended_length: int  # the env file's episode_length (a recommendation there)


ARM_TASKS: dict[str, ArmTask] = {
    "arm-push-easy": ArmTask(
        Scene((-0.1, 0.6, 0.07), ((-0.1, 0.6), (0.1, 0.6)), 0.1, walls=False, impratio=1.0),
        0.1,
        (0.1, 0.6, 0.03),
        0.1,
        50,
    ),
    "arm-push-hard": ArmTask(
        Scene((-0.25, 0.65, 0.07), ((-0.25, 0.65), (0.25, 0.65)), 0.25, walls=False, impratio=1.0),
        0.25,
        (0.25, 0.65, 0.03),
        0.25,
        80,
    ),
    "arm-binpick-hard": ArmTask(
        Scene((-0.3, 0.6, 0.07), ((-0.3, 0.6), (0.3, 0.6)), 0.2, walls=True, impratio=10.0),
        0.15,
        (0.3, 0.6, 0.03),
        0.15,
        80,
    ),
}


@functools.cache
def build_model(name: str) -> mujoco.MjModel:
    """The compiled scene of an arm task (needs the `arm` extra)."""
    return build_scene(ARM_TASKS[name].scene)


@dataclasses.dataclass(frozen=True)
class ArmTaskFactory:
    """Factory of an `ArmEnv` for the task `ARM_TASKS[name]` (registry entry `name`)."""

    name: str
    body: str = BODY

    def model(self) -> mujoco.MjModel:
        return build_model(self.name)

    def spec(self, name: str, defaults: EnvDefaults, backend: str) -> EnvSpec:
        """Static: builds no model, so it works without the `arm` extra."""
        return EnvSpec(
            name=name,
            state_dim=STATE_DIM,
            goal_dim=3,
            goal_indices=(0, 1, 2),
            action_dim=5,
            episode_length=defaults.episode_length,
            success_radius=defaults.success_radius,
            backend=backend,
            ogbench_env_id=defaults.ogbench_env_id,
            body=self.body,
            maze=None,
            num_tasks=0,
            healthy_z=defaults.healthy_z,
            control_dt=TIMESTEP * FRAME_SKIP,
            family=defaults.family,
            backends=defaults.backends,
        )

    def env(self, spec: EnvSpec) -> ArmEnv:
        """The bare arm env; a one-line ValueError names the extra when it is missing."""
        model = self.model()
        physics = make_backend(spec.backend, model, FRAME_SKIP)
        return ArmEnv(spec, ARM_TASKS[self.name], physics, model)


ARM_DEFAULTS = EnvDefaults(EPISODE_LENGTH, SUCCESS_RADIUS, "arm", ("mjx", "native", "warp"))
ENTRIES = {name: EnvEntry(ARM_DEFAULTS, ArmTaskFactory(name)) for name in ARM_TASKS}


def action_to_ctrl(action: jax.Array) -> jax.Array:
    """The paper's map from a 5-dim action in [-1, 1] to the 9 actuator controls."""
    a = jnp.clip(action, -1.0, 1.0)
    low, high = jnp.asarray(CTRL_LOW), jnp.asarray(CTRL_HIGH)
    arm = jnp.zeros(7).at[jnp.asarray(ACTION_JOINTS)].set(a[:4])
    arm = (low + high) / 2 + arm * (high - low) / 2
    grip = jnp.where(a[4] > 0, 0.0, 255.0)
    return jnp.concatenate([arm, jnp.stack([grip, grip])]).astype(jnp.float32)


class ArmEnv(BatchMixin):
    """The bare arm env (no episode limit, no auto-reset); same methods as `api.GoalEnv`."""

    def __init__(self, spec: EnvSpec, task: ArmTask, backend, model: mujoco.MjModel):
        self.spec = spec
        self.task = task
        self.backend = backend
        self.mj_model = model
        body = functools.partial(mujoco.mj_name2id, model, mujoco.mjtObj.mjOBJ_BODY)
        self._eef, self._left = body("link7"), body("left_finger")
        self._right = body("right_finger")
        self._cube_qpos = int(model.jnt_qposadr[model.body_jntadr[body("cube")]])
        self._qpos0 = jnp.asarray(model.qpos0, jnp.float32)

    @property
    def unwrapped(self) -> ArmEnv:
        """This env (no episode limit, no auto-reset)."""
        return self

    def sample_goal(self, key: jax.Array) -> jax.Array:
        """A goal [3]: the goal centre with uniform xy noise (z fixed at the table)."""
        t = self.task
        noise = jax.random.uniform(key, (3,), minval=-1.0) * jnp.array([1.0, 1.0, 0.0])
        return (jnp.asarray(t.goal_centre) + t.goal_noise * noise).astype(jnp.float32)

    def reset(self, key: jax.Array, needed: jax.Array | None = None) -> EnvState:
        """A fresh episode: arm at the paper's home pose, cube and goal drawn with noise."""
        k_cube, k_goal, k_rng = jax.random.split(key, 3)
        c = self._cube_qpos
        xy = jnp.asarray(self.task.scene.cube_start[:2])
        xy = xy + self.task.cube_noise * jax.random.uniform(k_cube, (2,), minval=-1.0)
        qpos = self._qpos0.at[:9].set(jnp.asarray(ARM_HOME)).at[c : c + 2].set(xy)
        qvel = jnp.zeros(self.mj_model.nv, jnp.float32)
        physics = self.backend.init(qpos, qvel, needed)
        return self._observe(physics, self.sample_goal(k_goal), jnp.int32(0), k_rng)

    def reset_to_task(self, key: jax.Array, task_id) -> EnvState:
        """Arm tasks have no fixed evaluation tasks: always a one-line ValueError."""
        raise ValueError(f"env {self.spec.name!r} has no fixed evaluation tasks")

    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        """One control step (25 physics steps) with `action` in [-1, 1]^5."""
        check_action(self.spec, action)
        physics = self.backend.step(state.physics, action_to_ctrl(jnp.asarray(action)))
        return self._observe(physics, state.goal, state.steps + 1, state.rng)

    def observe_state(self, physics: PhysicsState) -> jax.Array:
        """The 17-dim state: cube xyz, 7 joint angles, link-7 position and velocity, finger gap."""
        c = self._cube_qpos
        gap = jnp.linalg.norm(physics.xpos[self._right] - physics.xpos[self._left])
        return jnp.concatenate(
            [
                physics.qpos[c : c + 3],
                physics.qpos[:7],
                physics.xpos[self._eef],
                physics.sensordata[:3],
                gap[None],
            ]
        )

    def _observe(self, physics: PhysicsState, goal, steps, rng) -> EnvState:
        state = self.observe_state(physics)
        dist = jnp.linalg.norm(state[:3] - goal)
        return EnvState(
            obs=jnp.concatenate([state, goal]),
            goal=goal,
            success=(dist < self.spec.success_radius).astype(jnp.float32),
            dist_to_goal=dist,
            done=jnp.float32(0.0),
            truncation=jnp.float32(0.0),
            steps=steps,
            physics=physics,
            rng=rng,
        )
