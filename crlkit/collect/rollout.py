"""Vectorized rollouts: envs in lockstep, vmapped and scanned in jitted chunks of CHUNK steps.

Rows reach the host once per chunk; each episode stores `episode_length + 1` rows (the
observation before each step and the action taken), or fewer when the env terminated.
"""

from __future__ import annotations

import math
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from crlkit import metric_names as names
from crlkit.collect.config import CollectConfig
from crlkit.collect.goal_styles import Goals
from crlkit.collect.policies import noisy, unit
from crlkit.runs.progress import Progress

CHUNK = 250  # env steps per jitted scan call (rows reach the host this often)
LINE_SECONDS = 10.0  # off a terminal, a status line at most this often


class Rows(NamedTuple):
    """One env step's record: the row before the step, and whether the step ended the episode."""

    obs: jax.Array
    action: jax.Array
    qpos: jax.Array
    qvel: jax.Array
    goal: jax.Array
    done: jax.Array


class Carry(NamedTuple):
    """Per-env loop state."""

    env: Any
    t: jax.Array
    direction: jax.Array
    key: jax.Array


def _random_direction(key: jax.Array) -> jax.Array:
    return unit(jax.random.normal(key, (2,)))


def make_rollout(cfg: CollectConfig, env, policy, goals: Goals):
    """(reset(keys) -> carry, run(carry) -> (carry, Rows [CHUNK, num_envs, ...])), both jitted."""
    spec = env.spec
    style = cfg.style

    def reset_one(key):
        k_env, k_goal, k_dir, k_loop = jax.random.split(key, 4)
        s = env.reset(k_env)
        if style == "navigate":
            s = env.with_goal(s, goals.navigate(k_goal))
        elif style == "stitch":
            s = env.with_goal(s, goals.stitch(k_goal, env.body.xy(s.physics)))
        return Carry(s, jnp.int32(0), _random_direction(k_dir), k_loop)

    def step_one(c: Carry, _):
        key, k_dir, k_act, k_noise, k_goal = jax.random.split(c.key, 5)
        new_dir = c.t % cfg.explore_every == 0
        direction = jnp.where(new_dir, _random_direction(k_dir), c.direction)
        s = c.env
        action = noisy(policy(s, direction, k_act), cfg.noise, k_noise)
        nxt = env.step(s, action)
        if style == "navigate":  # OGBench: a new goal as soon as the current one is reached
            goal = jnp.where(nxt.success > 0, goals.navigate(k_goal), nxt.goal)
            nxt = env.with_goal(nxt, goal)
        row = Rows(
            s.obs[: spec.state_dim], action, s.physics.qpos, s.physics.qvel, s.goal, nxt.done
        )
        return Carry(nxt, c.t + 1, direction, key), row

    def run(carry: Carry):
        return jax.lax.scan(jax.vmap(step_one), carry, None, length=CHUNK)

    return jax.jit(jax.vmap(reset_one)), jax.jit(run)


def _episode_rows(rows: Rows, length: int) -> list[dict[str, np.ndarray]]:
    """Per-env episodes from [time, env] rows: `length + 1` rows, or fewer when an env terminated.

    A step that terminates (e.g. a fallen humanoid) makes the next row the episode's final one.
    """
    host = jax.tree.map(np.asarray, rows)
    episodes = []
    for e in range(host.obs.shape[1]):
        done = np.flatnonzero(host.done[:length, e] > 0)
        last = int(done[0]) + 1 if done.size else length  # index of the final row
        episodes.append({k: v[: last + 1, e] for k, v in host._asdict().items() if k != "done"})
    return episodes


def roll_out(cfg, env, policy, graph, length, num_episodes, progress):
    """All episodes (host dicts), env steps taken, and env steps/s after compilation."""
    num_envs = min(cfg.num_envs, num_episodes)
    rounds = math.ceil(num_episodes / num_envs)
    chunks = math.ceil((length + 1) / CHUNK)
    reset, run = make_rollout(cfg, env, policy, Goals(env, graph, cfg))
    total = rounds * chunks * CHUNK * num_envs
    bar = Progress(
        total, desc=f"collect {env.spec.name}", disable=not progress, min_seconds=LINE_SECONDS
    )
    episodes: list[dict[str, np.ndarray]] = []
    key = jax.random.PRNGKey(cfg.seed)
    start, timed_steps = None, 0
    for _ in range(rounds):
        key, k_round = jax.random.split(key)
        carry = reset(jax.random.split(k_round, num_envs))
        parts = []
        for _ in range(chunks):
            carry, rows = run(carry)
            parts.append(jax.device_get(rows))
            if start is None:  # the first chunk pays for compilation: time from its end
                start = time.perf_counter()
            else:
                timed_steps += CHUNK * num_envs
            rate = timed_steps / max(time.perf_counter() - start, 1e-9)
            bar.update(bar.n + CHUNK * num_envs, {names.ENV_STEPS_PER_S: rate} if rate else {})
        rows = jax.tree.map(lambda *xs: np.concatenate(xs), *parts)
        episodes.extend(_episode_rows(rows, length))
    seconds = time.perf_counter() - start
    bar.close()
    rate = timed_steps / seconds if timed_steps else float("nan")
    return episodes[:num_episodes], total, rate
