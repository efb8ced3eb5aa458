"""Episodes of a trained actor, recorded for rendering: body positions, goal, success.

An episode ends at its first success (OGBench's rule; the rest would show the body idling at the
goal), at a termination (a fallen humanoid), or at the env's episode limit.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from crlkit import learner

BODIES = ("point", "ant", "humanoid")  # bodies with a planar position and a torso to follow


@dataclasses.dataclass(frozen=True)
class Episode:
    """One recorded episode, on the host.

    Attributes:
      qpos: [T + 1, nq] joint positions from the start state to the last one (what video frames
        are rendered from).
      xy: [T + 1, 2] the body's xy over the same states (what the trajectory map draws).
      goal: [goal_dim] the goal (xy; xyz for the paper's humanoid).
      success: True when the env reported success at some state of the episode.
    """

    qpos: np.ndarray
    xy: np.ndarray
    goal: np.ndarray
    success: bool

    @property
    def goal_xy(self) -> np.ndarray:
        """[2] the goal's planar position."""
        return self.goal[:2]

    @property
    def steps(self) -> int:
        """Control steps taken."""
        return len(self.xy) - 1


def record_episodes(
    env: Any,
    nets: learner.Networks,
    actor_params: Any,
    key: jax.Array,
    episodes: int,
    task: int | None = None,
    goal_observation: bool = False,
    goal_xy: jax.Array | None = None,
) -> list[Episode]:
    """`episodes` deterministic-actor episodes in `env` on fresh goals, or on OGBench task `task`.

    `goal_xy`: every episode is commanded to this floor position instead (starts as drawn).

    `goal_observation`: the actor takes whole goal observations (offline runs trained with
    OGBench's goal space) instead of the env's goal slice; they are built as OGBench does.

    Every episode runs in one jitted, vmapped scan over the episode limit; each is then cut at
    its end (see the module docstring). Starts and goals depend only on `key`, so runs of
    different depths recorded with the same key face the same starts and goals.
    """
    bare = env.unwrapped
    spec = env.spec
    keys = jax.random.split(key, episodes)

    def one(k: jax.Array):
        start = bare.reset(k) if task is None else bare.reset_to_task(k, task)
        if goal_xy is not None:
            start = bare.with_goal(start, bare.goal_of_xy(jnp.asarray(goal_xy, jnp.float32)))
        goal = goal_observation_of(bare, start) if goal_observation else start.goal

        def step(state, _):
            action = learner.act(
                nets, actor_params, state.obs[: spec.state_dim], goal, k, deterministic=True
            )
            nxt = bare.step(state, action)
            return nxt, _record(bare, nxt)

        _, trail = jax.lax.scan(step, start, None, length=spec.episode_length)
        first = _record(bare, start)
        trail = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), first, trail)
        return (*trail, start.goal)

    qpos, xy, success, done, goal = jax.device_get(jax.jit(jax.vmap(one))(keys))
    return [_cut(qpos[i], xy[i], success[i], done[i], goal[i]) for i in range(episodes)]


def goal_observation_of(env, start) -> jax.Array:
    """The observation of the episode's start pose moved to its goal (OGBench's goal
    observation: the reset pose with the body's xy set to the goal's)."""
    from crlkit.envs.bodies import body_ids

    qpos = env.body.set_xy(start.physics.qpos, start.goal[:2])
    physics = env.backend.init(qpos, start.physics.qvel)
    return env.body.observe(physics, body_ids(env.mj_model))


def _record(env, state) -> tuple[jax.Array, ...]:
    """What an episode keeps of one state: qpos, body xy, success and termination flags."""
    return state.physics.qpos, env.body.xy(state.physics), state.success > 0, state.done > 0


def _cut(qpos, xy, success, done, goal) -> Episode:
    """The episode up to and including its first success or termination (states 1.. only: the
    start state is not an outcome)."""
    hits = np.flatnonzero(success[1:] | done[1:])
    stop = int(hits[0]) + 2 if hits.size else len(xy)
    return Episode(
        np.asarray(qpos[:stop], np.float32),
        np.asarray(xy[:stop], np.float32),
        np.asarray(goal, np.float32),
        bool(np.any(success[:stop])),
    )
