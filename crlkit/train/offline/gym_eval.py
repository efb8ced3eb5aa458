"""OGBench's protocol in OGBench's own gymnasium env: the fallback for envs crlkit lacks.

`crlkit.train.evaluate.evaluate_tasks` evaluates in crlkit's jitted envs; datasets collected in an
env crlkit does not register with OGBench parity (antsoccer, cube, scene, puzzle, ...) are evaluated
here instead, in `gymnasium.make(<ogbench env id>)`, with the same metrics (`success`,
`task{k}_success`). The episodes of one task run in lockstep so the actor sees one batch per step.

OGBench draws start and goal noise from NumPy's global RNG, so `evaluate_gym_tasks` seeds it (and
each env's own generator) from its `seed`: the same seed gives the same episodes.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

HostPolicy = Callable[[np.ndarray, np.ndarray], np.ndarray]  # ([N, S], [N, G]) -> [N, A]


def make_gym_env(env_id: str) -> Any:
    """OGBench's gymnasium env `env_id` (e.g. 'antsoccer-arena-v0'); one-line error if unknown."""
    import gymnasium

    with contextlib.redirect_stdout(io.StringIO()):
        import ogbench  # noqa: F401  (registers OGBench's env ids with gymnasium)
    try:
        return gymnasium.make(env_id)
    except gymnasium.error.Error as err:
        raise ValueError(f"cannot make OGBench env {env_id!r} ({type(err).__name__})") from None


def env_sizes(env: Any) -> tuple[int, int, int]:
    """(observation size, action size, number of fixed tasks) of an OGBench gymnasium env."""
    obs = int(np.prod(env.observation_space.shape))
    act = int(np.prod(env.action_space.shape))
    return obs, act, int(getattr(env.unwrapped, "num_tasks", 0) or 0)


def evaluate_gym_tasks(
    envs: Sequence[Any],
    policy: HostPolicy,
    goal_indices: Sequence[int],
    seed: int,
) -> dict[str, float]:
    """OGBench's protocol: len(envs) episodes of each fixed task, success ends an episode.

    Args:
      envs: identical OGBench gymnasium envs, one per episode of a task (run in lockstep).
      policy: deterministic, batched: (states [N, S], goals [N, G]) -> actions [N, A].
      goal_indices: the goal slice of OGBench's full goal observation (`info['goal']`).
      seed: seeds NumPy's global RNG and each env's generator.

    Returns:
      success (mean over tasks) and task{k}_success for k = 1..num_tasks.
    """
    _, _, num_tasks = env_sizes(envs[0])
    if num_tasks == 0:
        raise ValueError(f"env {envs[0].spec.id!r} has no fixed evaluation tasks")
    np.random.seed(seed % 2**32)
    goal_cols = list(goal_indices)
    per_task = []
    for task_id in range(1, num_tasks + 1):
        seeds = [seed * 1_000_003 + task_id * 1_009 + i for i in range(len(envs))]
        per_task.append(_task_success(envs, policy, goal_cols, task_id, seeds))
    out = {"success": float(np.mean(per_task))}
    out.update({f"task{k}_success": float(v) for k, v in enumerate(per_task, start=1)})
    return out


def _task_success(
    envs: Sequence[Any], policy: HostPolicy, goal_cols: list[int], task_id: int, seeds: list[int]
) -> float:
    """Fraction of lockstep episodes of one task that reach the goal."""
    obs, goals = [], []
    for env, s in zip(envs, seeds, strict=True):
        ob, info = env.reset(seed=s, options={"task_id": task_id, "render_goal": False})
        obs.append(ob)
        goals.append(np.asarray(info["goal"], np.float32)[goal_cols])
    obs_arr, goal_arr = np.asarray(obs, np.float32), np.asarray(goals, np.float32)
    alive = np.ones(len(envs), bool)
    success = np.zeros(len(envs), np.float32)
    while alive.any():
        actions = np.clip(np.asarray(policy(obs_arr, goal_arr)), -1.0, 1.0)
        for i in np.flatnonzero(alive):
            ob, _, terminated, truncated, info = envs[i].step(actions[i])
            obs_arr[i] = ob
            success[i] = max(success[i], float(info.get("success", 0.0)))
            alive[i] = not (terminated or truncated or success[i] > 0)
    return float(success.mean())
