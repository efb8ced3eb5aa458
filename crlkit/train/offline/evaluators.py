"""Where an offline policy is evaluated: crlkit's env when it has OGBench parity and tasks,
else OGBench's own gymnasium env (`gym_eval.py`); OGBench's protocol either way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from crlkit.data.dataset import Dataset, DatasetError
from crlkit.data.plan import DatasetPlan, no_env_message
from crlkit.envs import make
from crlkit.train import evaluate
from crlkit.train.evaluate import Evaluator
from crlkit.train.offline import gym_eval
from crlkit.train.offline.config import OfflineConfig
from crlkit.train.offline.minari_eval import minari_evaluator

FRESH_GOAL_TASKS = 5  # fresh-goal episodes per --eval-episodes, as many as OGBench's 5 tasks


def make_evaluator(
    cfg: OfflineConfig,
    ds: Dataset,
    plan: DatasetPlan,
    echo: Callable[[str], Any] = lambda _: None,
) -> Evaluator:
    """evaluator(nets, actor_params, key) -> OGBench task metrics, in the env `plan` names.

    `plan` is the run's `plan_dataset` (the run checked with `check_fits` that the data fits
    crlkit's env) and `ds` has the plan's goal columns. Raises DatasetError/ValueError (one line)
    when no env is named or OGBench's env does not take the dataset's sizes.
    """
    if tuple(ds.goal_indices) != plan.goal_indices:
        raise ValueError(
            f"the dataset's goal columns {tuple(ds.goal_indices)} are not the plan's "
            f"{plan.goal_indices} (goal space {plan.goal_space}): pass the planned dataset"
        )
    kind, name = plan.eval_target or ("", "")
    if kind == "ogbench":
        return _gym_evaluator(cfg, ds, name)
    if kind == "crlkit":
        return _crlkit_evaluator(make(name, cfg.backend), cfg.eval_episodes)
    if kind == "minari":
        return minari_evaluator(ds, FRESH_GOAL_TASKS * cfg.eval_episodes, echo)
    raise ValueError(no_env_message(ds))


def _crlkit_evaluator(env: Any, episodes: int) -> Evaluator:
    """OGBench's tasks in a crlkit env; open floors and the arm tasks: 5 x `episodes` fresh
    goals."""
    if env.spec.num_tasks == 0:
        return lambda nets, params, key: evaluate.evaluate_fresh_goals(
            env, evaluate.actor_policy(nets, params), key, FRESH_GOAL_TASKS * episodes
        )
    return lambda nets, params, key: evaluate.evaluate_tasks(
        env, evaluate.actor_policy(nets, params), key, episodes
    )


def _gym_evaluator(cfg: OfflineConfig, ds: Dataset, env_id: str) -> Evaluator:

    envs = [gym_eval.make_gym_env(env_id)]
    obs_dim, action_dim, num_tasks = gym_eval.env_sizes(envs[0])
    for what, got, want in (
        ("observation", ds.obs_dim, obs_dim),
        ("action", ds.action_dim, action_dim),
    ):
        if got != want:
            raise DatasetError(
                ds.metadata.get("path", ds.name),
                f"{what} size {got} does not match env {env_id!r} ({what} size {want})",
            )
    if num_tasks == 0:
        raise ValueError(f"OGBench env {env_id!r} has no fixed evaluation tasks")
    envs += [gym_eval.make_gym_env(env_id) for _ in range(cfg.eval_episodes - 1)]

    def evaluator(nets, params, key):
        policy = evaluate.actor_policy(nets, params)
        seed = int(jax.random.randint(key, (), 0, 2**31 - 1))
        act = lambda s, g: np.asarray(_batched_policy(policy, s, g))
        return gym_eval.evaluate_gym_tasks(envs, act, ds.goal_indices, seed)

    return evaluator


@jax.jit
def _batched_policy(policy, states: jax.Array, goal: jax.Array) -> jax.Array:
    return jax.vmap(policy)(states, goal)
