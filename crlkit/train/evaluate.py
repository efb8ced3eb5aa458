"""Evaluation shared by the online and offline loops: deterministic rollouts on the bare env.

```python
policy = actor_policy(nets, state.actor.params)           # deterministic actor, as a pytree
evaluate_fresh_goals(env, policy, key, num_episodes)      # fresh start + goal per episode
evaluate_tasks(env, policy, key, episodes_per_task)       # OGBench's fixed tasks 1..N
```

Both run every episode of one call as ONE jitted, vmapped rollout over `env.unwrapped` (no
auto-reset, no episode limit: the rollout itself stops after `spec.episode_length` steps). The
rollout is a `lax.while_loop` that also stops early once every episode is over, so a good policy
evaluated with OGBench's protocol (success ends the episode) costs less. The jitted function is
compiled once per (env, policy network, number of episodes) and reused for new parameters.

Counting: a step is "at the goal" when, after the action, the body is within `spec.success_radius`
of the goal. An episode ends at its step limit, when the env terminates (the humanoid falls), and,
for `evaluate_tasks` only, at its first success. Steps after an episode ended count as not at goal.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp

from crlkit import learner
from crlkit.envs.api import EnvState, GoalEnv

Params = Any

# evaluator(nets, actor params, key) -> metrics with at least `success` (the offline loop's)
Evaluator = Callable[[learner.Networks, Params, jax.Array], dict[str, float]]


@flax.struct.dataclass
class Policy:
    """A deterministic goal-conditioned policy: `apply(params, state, goal) -> action` in [-1, 1].

    `apply` is static (hashable; it keys the compile cache) and `params` is a pytree of arrays,
    so evaluating new parameters with the same `apply` never recompiles.
    """

    apply: Callable[[Params, jax.Array, jax.Array], jax.Array] = flax.struct.field(
        pytree_node=False
    )
    params: Params

    def __call__(self, state: jax.Array, goal: jax.Array) -> jax.Array:
        return self.apply(self.params, state, goal)


@dataclasses.dataclass(frozen=True)
class _DeterministicActor:
    """tanh(mean) of the actor network; equal (and hash-equal) for equal networks."""

    nets: learner.Networks

    def __call__(self, params: Params, state: jax.Array, goal: jax.Array) -> jax.Array:
        return learner.act(self.nets, params, state, goal, None, deterministic=True)


def actor_policy(nets: learner.Networks, actor_params: Params) -> Policy:
    """The deterministic actor (tanh of the Gaussian mean) of a CRL learner as a `Policy`."""
    return Policy(apply=_DeterministicActor(nets), params=actor_params)


def evaluate_fresh_goals(
    env: Any, policy: Policy, key: jax.Array, num_episodes: int
) -> dict[str, float]:
    """Mean metrics over `num_episodes` episodes, each with a fresh start and goal.

    Returns:
      success: fraction of episodes within the radius at least once.
      final_success: fraction within the radius at the final step.
      time_at_goal: steps within the radius / episode length (the paper's score, as a fraction).
      steps_at_goal: steps within the radius (the paper's number, out of the episode length).
      final_distance: distance to the goal at the final step.
      episode_steps: steps before the episode ended (the length, unless the env terminated).
      easy_success: envs with an easy radius (the paper's humanoid: 2.0) only: fraction within
        it at least once (the paper's "easy success").
    """
    bare = _bare(env)
    _check_count("num_episodes", num_episodes)
    out = _fresh_goal_rollouts(bare, policy, key, num_episodes)
    return {name: float(value) for name, value in out.items()}


def evaluate_tasks(
    env: Any, policy: Policy, key: jax.Array, episodes_per_task: int
) -> dict[str, float]:
    """OGBench's protocol: `episodes_per_task` episodes of each fixed task; success ends one.

    Returns:
      success: success rate averaged over the tasks (OGBench's score).
      task{k}_success: success rate of task k = 1..N.
    Raises ValueError for envs without fixed tasks (`env.spec.num_tasks == 0`).
    """
    bare = _bare(env)
    _check_count("episodes_per_task", episodes_per_task)
    if bare.spec.num_tasks == 0:
        raise ValueError(f"env {bare.spec.name!r} has no fixed evaluation tasks")
    per_task = _task_rollouts(bare, policy, key, episodes_per_task)
    tasks = {f"task{k + 1}_success": float(v) for k, v in enumerate(per_task)}
    return {"success": float(jnp.mean(per_task)), **tasks}


# ---------------------------------------------------------------------------------------------
# Jitted rollouts (env, policy.apply and counts are static: one compile per combination)


@functools.partial(jax.jit, static_argnames=("env", "num_episodes"))
def _fresh_goal_rollouts(
    env: GoalEnv, policy: Policy, key: jax.Array, num_episodes: int
) -> dict[str, jax.Array]:
    first = jax.vmap(env.reset)(jax.random.split(key, num_episodes))
    final, stats = _rollout(env, policy, first, stop_on_success=False)
    length = env.spec.episode_length
    easy = {"easy_success": jnp.mean(stats.reached_easy)} if _easy_radius(env) else {}
    return {
        **easy,
        "success": jnp.mean(stats.reached),
        "final_success": jnp.mean(stats.at_goal_now),
        "time_at_goal": jnp.mean(stats.steps_at_goal) / length,
        "steps_at_goal": jnp.mean(stats.steps_at_goal),
        "final_distance": jnp.mean(stats.final_distance),
        "episode_steps": jnp.mean(stats.episode_steps),
    }


@functools.partial(jax.jit, static_argnames=("env", "episodes_per_task"))
def _task_rollouts(
    env: GoalEnv, policy: Policy, key: jax.Array, episodes_per_task: int
) -> jax.Array:
    """Success rate per task [num_tasks]."""
    num_tasks = env.spec.num_tasks
    task_ids = jnp.repeat(jnp.arange(1, num_tasks + 1), episodes_per_task)
    keys = jax.random.split(key, task_ids.shape[0])
    first = jax.vmap(env.reset_to_task)(keys, task_ids)
    _, stats = _rollout(env, policy, first, stop_on_success=True)
    return jnp.mean(stats.reached.reshape(num_tasks, episodes_per_task), axis=1)


@flax.struct.dataclass
class _Stats:
    """Per-episode counters carried through the rollout ([N] each)."""

    alive: jax.Array  # bool: the episode has not ended
    reached: jax.Array  # float: within the radius at least once
    reached_easy: jax.Array  # float: within the easy radius at least once (= reached without one)
    at_goal_now: jax.Array  # float: within the radius at the latest step (0 once ended)
    steps_at_goal: jax.Array  # float
    episode_steps: jax.Array  # float
    final_distance: jax.Array  # float: distance at the last step the episode was alive


def _rollout(
    env: GoalEnv, policy: Policy, first: EnvState, stop_on_success: bool
) -> tuple[EnvState, _Stats]:
    """Steps a batch of episodes with the policy until the step limit or all have ended."""
    state_dim, easy_radius = env.spec.state_dim, _easy_radius(env)
    zeros = jnp.zeros(first.success.shape, jnp.float32)
    stats = _Stats(
        alive=jnp.ones(first.success.shape, bool),
        reached=zeros,
        reached_easy=zeros,
        at_goal_now=zeros,
        steps_at_goal=zeros,
        episode_steps=zeros,
        final_distance=first.dist_to_goal,
    )

    def step(carry):
        t, s, st = carry
        action = jax.vmap(policy)(s.obs[:, :state_dim], s.goal)
        nxt = jax.vmap(env.step)(s, action)
        live = st.alive.astype(jnp.float32)
        at_goal = nxt.success * live
        reached = jnp.maximum(st.reached, at_goal)
        near = (nxt.dist_to_goal <= easy_radius) * live if easy_radius else at_goal
        reached_easy = jnp.maximum(st.reached_easy, near)
        alive = st.alive & (nxt.done == 0)
        if stop_on_success:
            alive = alive & (reached == 0)
        st = _Stats(
            alive=alive,
            reached=reached,
            reached_easy=reached_easy,
            at_goal_now=at_goal,
            steps_at_goal=st.steps_at_goal + at_goal,
            episode_steps=st.episode_steps + live,
            final_distance=jnp.where(st.alive, nxt.dist_to_goal, st.final_distance),
        )
        return t + 1, nxt, st

    def running(carry):
        t, _, st = carry
        return (t < env.spec.episode_length) & jnp.any(st.alive)

    _, final, stats = jax.lax.while_loop(running, step, (jnp.int32(0), first, stats))
    return final, stats


def _easy_radius(env: GoalEnv) -> float | None:
    """The env's "easy" success radius (the paper's humanoid: 2.0), or None."""
    return env.spec.easy_success_radius


def _bare(env: Any) -> GoalEnv:
    """The env without auto-reset or episode limit."""
    return env.unwrapped


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
