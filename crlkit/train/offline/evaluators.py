"""Where an offline policy is evaluated: crlkit's env when it has OGBench parity and tasks,
else OGBench's own gymnasium env (`gym_eval.py`); OGBench's protocol either way."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from crlkit.data.dataset import Dataset, DatasetError, check_env
from crlkit.envs import make
from crlkit.train import evaluate
from crlkit.train.evaluate import Evaluator
from crlkit.train.offline import gym_eval
from crlkit.train.offline.config import (  # noqa: F401  (eval_target: part of this module's API)
    DatasetPlan,
    OfflineConfig,
    eval_target,
    no_env_message,
    plan_dataset,
)
from crlkit.train.offline.minari_eval import minari_evaluator

FRESH_GOAL_TASKS = 5  # fresh-goal episodes per --eval-episodes, as many as OGBench's 5 tasks


def make_evaluator(
    cfg: OfflineConfig,
    ds: Dataset,
    echo: Callable[[str], Any] = lambda _: None,
    *,
    plan: DatasetPlan | None = None,
) -> Evaluator:
    """evaluator(nets, actor_params, key) -> OGBench task metrics, in the env `plan` names.

    `plan` is the run's `plan_dataset(cfg, ds)` (made here when not given) and `ds` has the
    plan's goal columns. Raises DatasetError/ValueError (one line) when no env is named or the
    env's sizes do not match the dataset's.
    """
    plan = plan or plan_dataset(cfg, ds)
    if tuple(ds.goal_indices) != plan.goal_indices:
        raise ValueError(
            f"the dataset's goal columns {tuple(ds.goal_indices)} are not the plan's "
            f"{plan.goal_indices} (goal space {plan.goal_space}): pass the planned dataset"
        )
    if plan.eval_target is None:
        raise ValueError(no_env_message(ds))
    kind, name = plan.eval_target
    if kind == "minari":
        return minari_evaluator(ds, FRESH_GOAL_TASKS * cfg.eval_episodes, echo)
    env = make(plan.env, cfg.backend) if plan.env is not None else None
    if kind == "ogbench":
        if env is not None:  # crlkit's twin of OGBench's env: the data must fit it too
            check_env(dataclasses.replace(ds, goal_indices=plan.env_goal_indices), env.spec)
        return _gym_evaluator(cfg, ds, name)
    check_env(ds, env.spec)
    if env.spec.num_tasks == 0:  # open floors, the arm tasks: fresh goals, 5 x episodes
        return lambda nets, params, key: evaluate.evaluate_fresh_goals(
            env, evaluate.actor_policy(nets, params), key, FRESH_GOAL_TASKS * cfg.eval_episodes
        )
    return lambda nets, params, key: evaluate.evaluate_tasks(
        env, evaluate.actor_policy(nets, params), key, cfg.eval_episodes
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
