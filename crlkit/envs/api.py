"""Goal-conditioned env API: EnvSpec (static), EnvState (pytree), GoalEnv (pure reset/step).

`GoalEnv` is the bare env: no episode limit, no auto-reset (what evaluation uses); the
registry wraps it with `wrappers.AutoReset`. Both handle ONE env; callers `jax.vmap` (or use
`reset_batch`).
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import jax
import jax.numpy as jnp
import mujoco
from flax import struct

from crlkit.envs.backends.base import PhysicsBackend, PhysicsState
from crlkit.envs.bodies import Body, body_ids
from crlkit.envs.maze import MazeInfo


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """Static facts about an env: sizes, goal contract, limits.

    Attributes:
      name: registry name.
      state_dim: size of the state part of the observation (ogbench's or the paper's obs size).
      goal_dim: size of the goal (the goal slice of a state).
      goal_indices: indices into the state that form the goal (xy of the body; the paper's
        humanoid: torso xyz).
      action_dim: action size; actions live in [-1, 1].
      episode_length: control steps before truncation (the wrapped env's limit).
      success_radius: success when the body's goal-space position is within this distance.
      backend: the resolved physics backend name.
      ogbench_env_id: the matching ogbench gymnasium id, or None when OGBench has no such env.
      body: 'point', 'ant', 'humanoid' or 'panda'.
      maze: the maze layout (grid, unit, offsets, start/goal cells, eval tasks) or None.
      num_tasks: number of fixed evaluation tasks for `reset_to_task` (0 when none).
      healthy_z: (low, high): the episode terminates when the torso height leaves it; None: never.
      control_dt: seconds of simulated time per control step.
      family: 'paper' (the paper's Brax bodies), 'ogbench' (ogbench's bodies) or 'arm' (the
        paper's Franka Panda tasks).
      easy_success_radius: the paper's looser "easy success" radius (humanoid 2.0), or None.
      backends: the physics backends this env can run on (whether installed or not).
    """

    name: str
    state_dim: int
    goal_dim: int
    goal_indices: tuple[int, ...]
    action_dim: int
    episode_length: int
    success_radius: float
    backend: str
    ogbench_env_id: str | None
    body: str
    maze: MazeInfo | None
    num_tasks: int
    healthy_z: tuple[float, float] | None
    control_dt: float
    family: str = "ogbench"
    easy_success_radius: float | None = None
    backends: tuple[str, ...] = ()

    @property
    def obs_dim(self) -> int:
        """Size of the observation concat(state, goal)."""
        return self.state_dim + self.goal_dim


@dataclasses.dataclass(frozen=True)
class EnvDefaults:
    """What an env is registered with besides how it is built: the facts of its EnvSpec that its
    model does not tell (sizes and the control step come from the model)."""

    episode_length: int
    success_radius: float
    family: str  # 'ogbench', 'paper', 'arm', or a family of your own
    backends: tuple[str, ...]  # the physics backends it can run on
    ogbench_env_id: str | None = None
    healthy_z: tuple[float, float] | None = None
    easy_success_radius: float | None = None


class EnvFactory(Protocol):
    """How a registered env is built (`registry.Locomotion`, `arm.ArmTaskFactory`).

    `body` names the robot: two entries whose factories have equal bodies can evaluate each
    other's agents (`registry.check_same_family`).
    """

    body: object

    def model(self) -> mujoco.MjModel:
        """The compiled MuJoCo model (cached; a one-line ValueError names a missing extra)."""
        ...

    def spec(self, name: str, defaults: EnvDefaults, backend: str) -> EnvSpec:
        """The EnvSpec of the env registered as `name` on the (resolved) `backend`."""
        ...

    def env(self, spec: EnvSpec):
        """The bare env (no episode limit, no auto-reset) for a spec `spec()` made."""
        ...


@dataclasses.dataclass(frozen=True)
class EnvEntry:
    """One registered env, as MuJoCo Playground registers one: its spec defaults and its factory."""

    defaults: EnvDefaults
    factory: EnvFactory

    @property
    def ogbench_env_id(self) -> str | None:
        """The matching OGBench env id, or None."""
        return self.defaults.ogbench_env_id


@struct.dataclass
class EnvState:
    """State of ONE env (vmap for a batch).

    Attributes:
      obs: [state_dim + goal_dim] concat(state, goal).
      goal: [goal_dim] the goal (xy; the paper's humanoid: xyz).
      success: [] 1.0 when the body's goal-space position is within success_radius of the goal.
      dist_to_goal: [] distance from the body's goal-space position to the goal.
      done: [] 1.0 when the episode ended at this step (termination or truncation).
      truncation: [] 1.0 when it ended by the episode limit only.
      steps: [] int32 control steps taken in the current episode.
      physics: the physics backend's state.
      rng: PRNG key for the next auto-reset.
    """

    obs: jax.Array
    goal: jax.Array
    success: jax.Array
    dist_to_goal: jax.Array
    done: jax.Array
    truncation: jax.Array
    steps: jax.Array
    physics: PhysicsState
    rng: jax.Array


class BatchMixin:
    """`reset_batch`/`step_batch` helpers over the single-env `reset`/`step` (vmapped)."""

    spec: EnvSpec

    def reset_batch(self, key: jax.Array, num_envs: int) -> EnvState:
        """Resets `num_envs` envs from one key (a fresh start and goal each)."""
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        return jax.vmap(self.reset)(jax.random.split(key, num_envs))

    def step_batch(self, state: EnvState, action: jax.Array) -> EnvState:
        """Steps a batch of envs ([num_envs, action_dim] actions)."""
        check_action(self.spec, action, batched=True)
        return jax.vmap(self.step)(state, action)

    def with_goal(self, state: EnvState, goal: jax.Array) -> EnvState:
        """`state` commanded toward a new `goal` mid-episode (`crlkit collect`'s navigate and
        stitch styles): the observation carries it; success is recomputed at the next step."""
        obs = jnp.concatenate([state.obs[: self.spec.state_dim], goal.astype(state.obs.dtype)])
        return state.replace(goal=goal, obs=obs)


def check_action(spec: EnvSpec, action: jax.Array, batched: bool = False) -> None:
    """Raises a one-line ValueError when the action's last dim is not the env's action size."""
    shape = tuple(jnp.shape(action))
    want = 2 if batched else 1
    if len(shape) != want or shape[-1] != spec.action_dim:
        expect = "[num_envs, action_dim]" if batched else "[action_dim]"
        raise ValueError(
            f"action of shape {shape} does not fit env {spec.name!r}: expected {expect} "
            f"with action_dim={spec.action_dim}"
        )


class GoalEnv(BatchMixin):
    """The bare goal-conditioned env: pure `reset(key)` and `step(state, action)` for one env."""

    def __init__(self, spec: EnvSpec, body: Body, tasks, backend: PhysicsBackend, model):
        self.spec = spec
        self.body = body
        self.tasks = tasks
        self.backend = backend
        self.mj_model: mujoco.MjModel = model
        self._ids = body_ids(model)
        self._qpos0 = jnp.asarray(model.qpos0, jnp.float32)

    @property
    def unwrapped(self) -> GoalEnv:
        """This env (no episode limit, no auto-reset)."""
        return self

    def reset(self, key: jax.Array, needed: jax.Array | None = None) -> EnvState:
        """A fresh episode: start and goal drawn by the env's task sampler.

        `needed` ([] bool, optional): False tells the physics backend the caller will discard this
        state (see `PhysicsBackend.init`); the auto-reset passes `done` so only ended episodes
        cost physics work.
        """
        k_task, k_body, k_rng = jax.random.split(key, 3)
        start, goal = self.tasks.sample(k_task)
        return self._start(k_body, k_rng, start, goal, needed)

    def sample_goal(self, key: jax.Array) -> jax.Array:
        """A goal as `reset` draws it, in the env's goal space (e.g. torso xyz for the paper's
        humanoid)."""
        return self.goal_of_xy(self.tasks.sample(key)[1])

    def goal_of_xy(self, goal_xy: jax.Array) -> jax.Array:
        """The goal (in the env's goal space) at a floor position xy."""
        return self.body.goal_of_xy(goal_xy.astype(jnp.float32))

    def reset_to_task(self, key: jax.Array, task_id) -> EnvState:
        """An episode of OGBench's fixed evaluation task `task_id` (1..spec.num_tasks)."""
        n = self.spec.num_tasks
        if n == 0:
            raise ValueError(f"env {self.spec.name!r} has no fixed evaluation tasks")
        if isinstance(task_id, int) and not 1 <= task_id <= n:
            raise ValueError(f"task_id {task_id} out of range for {self.spec.name!r}: 1..{n}")
        k_task, k_body, k_rng = jax.random.split(key, 3)
        start, goal = self.tasks.task(k_task, task_id)
        return self._start(k_body, k_rng, start, goal)

    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        """One control step (frame skip included) with `action` in [-1, 1]^action_dim."""
        check_action(self.spec, action)
        physics, ctrl = self.body.control(state.physics, jnp.asarray(action, jnp.float32))
        physics = self.backend.step(physics, ctrl)
        return self._observe(physics, state.goal, state.steps + 1, state.rng, ctrl)

    def with_goal(self, state: EnvState, goal: jax.Array) -> EnvState:
        """As `BatchMixin.with_goal`; a body whose state observes its goal marker (the paper's
        humanoid: the target's slide joints, and the target's share of the centre of mass) also
        has the marker moved to the goal and those state entries recomputed, as a reset there
        would place them (only when the goal changed: kinematics only, no physics step)."""
        if not self.body.observes_goal_marker:
            return super().with_goal(state, goal)
        p = state.physics
        changed = jnp.any(goal != state.goal)
        qpos = self.body.place(p.qpos, self.body.xy(p), goal[:2].astype(jnp.float32))
        moved = self.backend.init(qpos, p.qvel, changed)
        moved = moved.replace(time=p.time, qacc_warmstart=p.qacc_warmstart)
        physics = jax.tree.map(lambda a, b: jnp.where(changed, a, b), moved, p)
        old = state.obs[: self.spec.state_dim]
        vec = self.body.keep_control_terms(self.body.observe(physics, self._ids), old)
        return super().with_goal(state.replace(physics=physics, obs=vec), goal)

    def _start(self, key, rng, start_xy, goal_xy, needed=None) -> EnvState:
        qpos, qvel = self.body.reset_qpos_qvel(key, self._qpos0, self.mj_model)
        goal_xy = goal_xy.astype(jnp.float32)
        qpos = self.body.place(qpos, start_xy, goal_xy)
        physics = self.backend.init(qpos, qvel, needed)
        goal = self.goal_of_xy(goal_xy)
        return self._observe(physics, goal, jnp.int32(0), rng)

    def _observe(self, physics: PhysicsState, goal, steps, rng, ctrl=None) -> EnvState:
        state = self.body.observe(physics, self._ids, ctrl)
        dist = jnp.linalg.norm(self.body.achieved_goal(physics) - goal)
        done = jnp.float32(0.0)
        if self.spec.healthy_z is not None:
            low, high = self.spec.healthy_z
            z = physics.qpos[2]
            done = jnp.where((z > low) & (z < high), 0.0, 1.0).astype(jnp.float32)
        return EnvState(
            obs=jnp.concatenate([state, goal]),
            goal=goal,
            success=(dist <= self.spec.success_radius).astype(jnp.float32),
            dist_to_goal=dist,
            done=done,
            truncation=jnp.float32(0.0),
            steps=steps,
            physics=physics,
            rng=rng,
        )
