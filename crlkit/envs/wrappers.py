"""Episode limit + auto-reset with a fresh start and goal on every reset (what training steps)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from crlkit.envs.api import BatchMixin, EnvState, GoalEnv, check_action


class AutoReset(BatchMixin):
    """Ends an episode after `spec.episode_length` steps or on termination, then starts a new one.

    On the step that ends an episode the returned state already holds the NEXT episode's first
    observation, goal and physics (drawn fresh from the state's rng: never the old start/goal),
    while `done`, `truncation`, `success` and `dist_to_goal` describe the step just taken.
    """

    def __init__(self, env: GoalEnv, episode_length: int | None = None):
        bad = not isinstance(episode_length, int) or episode_length < 1
        if episode_length is not None and bad:
            raise ValueError(f"episode_length must be an integer >= 1, got {episode_length!r}")
        self.env = env
        self.spec = env.spec
        if episode_length is not None:
            self.spec = dataclasses.replace(env.spec, episode_length=episode_length)

    @property
    def unwrapped(self) -> GoalEnv:
        """The bare env (no episode limit, no auto-reset), e.g. for evaluation."""
        return self.env

    def reset(self, key: jax.Array) -> EnvState:
        """A fresh episode (start and goal drawn by the env's task sampler)."""
        return self.env.reset(key)

    def reset_to_task(self, key: jax.Array, task_id) -> EnvState:
        """An episode of OGBench's evaluation task `task_id` (1..spec.num_tasks)."""
        return self.env.reset_to_task(key, task_id)

    def with_goal(self, state: EnvState, goal: jax.Array) -> EnvState:
        """The bare env's `with_goal` (a new goal mid-episode)."""
        return self.env.with_goal(state, goal)

    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        """One control step; resets the env when the episode ends."""
        nxt = self.env.step(state, action)
        done, truncation = self._ended(nxt)
        rng, reset_key = jax.random.split(state.rng)
        # Under vmap the reset runs for every env; `needed` lets the backend skip the physics of
        # the envs that are not done (their fresh state is discarded by the select).
        fresh = self.env.reset(reset_key, needed=done > 0)
        return _finish(_select(done, fresh, nxt), nxt, done, truncation, rng)

    def step_batch(self, state: EnvState, action: jax.Array) -> EnvState:
        """`jax.vmap(step)`, but the resets (JAX work and physics) run only on steps where at
        least one env is done, and then the physics only for those envs (what training steps)."""
        check_action(self.spec, action, batched=True)
        nxt = jax.vmap(self.env.step)(state, action)
        done, truncation = jax.vmap(self._ended)(nxt)
        keys = jax.vmap(jax.random.split)(state.rng)  # as `step` splits each env's key
        rng, reset_key = keys[:, 0], keys[:, 1]

        def reset_done(nxt: EnvState) -> EnvState:
            fresh = jax.vmap(self.env.reset)(reset_key, done > 0)
            return _select(done, fresh, nxt)

        out = jax.lax.cond(jnp.any(done > 0), reset_done, lambda n: n, nxt)
        return jax.vmap(_finish)(out, nxt, done, truncation, rng)

    def _ended(self, nxt: EnvState) -> tuple[jax.Array, jax.Array]:
        """(done, truncation) of one env after a step: termination or the episode limit."""
        truncation = ((nxt.steps >= self.spec.episode_length) & (nxt.done == 0)).astype(jnp.float32)
        return jnp.maximum(nxt.done, truncation), truncation


def _select(done: jax.Array, fresh: EnvState, nxt: EnvState) -> EnvState:
    """`fresh` where done else `nxt`, leaf by leaf (done: [] or [num_envs])."""

    def pick(new, old):
        mask = jnp.reshape(done > 0, done.shape + (1,) * (new.ndim - done.ndim))
        return jnp.where(mask, new, old)

    return jax.tree.map(pick, fresh, nxt)


def _finish(out: EnvState, nxt: EnvState, done, truncation, rng) -> EnvState:
    """The returned state: `done`, `truncation`, `success`, `dist_to_goal` of the step taken."""
    return out.replace(
        done=done,
        truncation=truncation,
        success=nxt.success,
        dist_to_goal=nxt.dist_to_goal,
        rng=rng,
    )
