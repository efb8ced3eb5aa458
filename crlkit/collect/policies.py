"""Data policies of `crlkit collect`: random, the scripted maze expert, or a trained run's actor.

Every policy is `policy(env_state, direction, key) -> action in [-1, 1]`; `direction` is the
explore style's current unit direction (other styles ignore it).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from crlkit import learner
from crlkit.collect.arm_expert import make_arm_expert
from crlkit.collect.config import CollectConfig
from crlkit.collect.maze_graph import MazeGraph, cell_id
from crlkit.envs.arm import ARM_TASKS
from crlkit.runs.actor import load_actor

EXPLORE_REACH = 4.0  # a checkpoint policy exploring aims this far along the direction (one cell)


def noisy(action: jax.Array, noise: float, key: jax.Array) -> jax.Array:
    """OGBench's exploration noise: add N(0, noise^2), clip to [-1, 1]."""
    return jnp.clip(action + noise * jax.random.normal(key, action.shape), -1.0, 1.0)


def unit(v: jax.Array) -> jax.Array:
    """`v` scaled to length 1 (safe at 0)."""
    return v / (jnp.linalg.norm(v) + 1e-6)


def make_policy(cfg: CollectConfig, env, graph: MazeGraph | None):
    """policy(env_state, direction, key) -> noiseless action, for the configured policy."""
    spec = env.spec
    if cfg.policy == "random":
        return lambda s, direction, key: jax.random.uniform(
            key, (spec.action_dim,), minval=-1.0, maxval=1.0
        )
    if cfg.policy == "expert":
        if spec.name in ARM_TASKS:  # the arm tasks' scripted push / grasp-carry-release expert
            return make_arm_expert(env)
        if spec.body != "point" or graph is None:
            raise ValueError(
                f"--policy expert is the scripted point-maze (or arm-task) controller; env "
                f"{spec.name!r} has a {spec.body}: pass a `crlkit online` run directory instead"
            )
        return functools.partial(_expert_action, env, graph, cfg.style == "explore")
    return checkpoint_policy(cfg.policy, spec, cfg.style == "explore")


def _expert_action(env, graph: MazeGraph, explore: bool, s, direction, key) -> jax.Array:
    """Unit step toward the next BFS cell centre on the way to the goal (or along `direction`)."""
    if explore:
        return direction
    maze = env.spec.maze
    xy = env.body.xy(s.physics)
    cell, goal_cell = cell_id(maze, graph, xy), cell_id(maze, graph, s.goal)
    sub = jnp.asarray(graph.next_cell)[goal_cell, cell]
    sub_xy = maze.cell_to_xy(jnp.stack([sub // graph.cols, sub % graph.cols]))
    return unit(sub_xy - xy)


def checkpoint_policy(run_dir: str, spec, explore: bool):
    """policy(...) from the latest checkpoint of a `crlkit online` run (deterministic actor)."""
    nets, actor_params = load_actor(run_dir, spec)

    def policy(s, direction, key):
        xy = s.obs[jnp.asarray(spec.goal_indices)]
        goal = xy + EXPLORE_REACH * direction if explore else s.goal
        return learner.act(nets, actor_params, s.obs[: spec.state_dim], goal, key, True)

    return policy
