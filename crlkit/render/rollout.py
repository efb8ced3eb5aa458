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


@dataclasses.dataclass(frozen=True)
class Episode:
    """One recorded episode, on the host.

    Attributes:
      qpos: [T + 1, nq] joint positions from the start state to the last one (what video frames
        are rendered from).
      xy: [T + 1, 2] the body's xy over the same states (what the trajectory map draws).
      goal: [2] the goal xy.
      success: True when the body came within the success radius of the goal.
    """

    qpos: np.ndarray
    xy: np.ndarray
    goal: np.ndarray
    success: bool

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
) -> list[Episode]:
    """`episodes` deterministic-actor episodes in `env` on fresh goals, or on OGBench task `task`.

    Every episode runs in one jitted, vmapped scan over the episode limit; each is then cut at
    its end (see the module docstring). Starts and goals depend only on `key`, so runs of
    different depths recorded with the same key face the same starts and goals.
    """
    bare = env.unwrapped
    spec = env.spec
    keys = jax.random.split(key, episodes)

    def one(k: jax.Array):
        start = bare.reset(k) if task is None else bare.reset_to_task(k, task)

        def step(state, _):
            action = learner.act(
                nets, actor_params, state.obs[: spec.state_dim], state.goal, k, deterministic=True
            )
            nxt = bare.step(state, action)
            ended = (nxt.success > 0) | (nxt.done > 0)
            return nxt, (nxt.physics.qpos, bare.body.xy(nxt.physics), ended)

        _, (qpos, xy, ended) = jax.lax.scan(step, start, None, length=spec.episode_length)
        first = (start.physics.qpos, bare.body.xy(start.physics))
        qpos = jnp.concatenate([first[0][None], qpos])
        xy = jnp.concatenate([first[1][None], xy])
        return qpos, xy, start.goal, ended

    qpos, xy, goal, ended = jax.device_get(jax.jit(jax.vmap(one))(keys))
    return [
        _cut(qpos[i], xy[i], goal[i], ended[i], spec.success_radius) for i in range(episodes)
    ]


def _cut(qpos, xy, goal, ended, radius: float) -> Episode:
    """The episode up to and including its first ending step."""
    hits = np.flatnonzero(ended)
    stop = int(hits[0]) + 2 if hits.size else len(xy)
    xy = np.asarray(xy[:stop], np.float32)
    reached = bool(np.any(np.linalg.norm(xy - goal, axis=-1) <= radius))
    return Episode(np.asarray(qpos[:stop], np.float32), xy, np.asarray(goal, np.float32), reached)
