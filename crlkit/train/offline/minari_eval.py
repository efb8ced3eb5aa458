"""Evaluation in the env a Minari dataset records, for datasets of envs crlkit does not have.

`MinariDataset.recover_environment` rebuilds the env from the dataset's env_spec when its package is
installed; episodes then run with the deterministic actor on the env's own goals (`desired_goal`
of a goal-conditioned dict observation) and count as successes when the env's `info` says so
(`success` or `is_success`, gymnasium-robotics' keys). When the env cannot be rebuilt, training
runs without evaluation and one line says why.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from crlkit.data.dataset import Dataset
from crlkit.data.minari_io import local_data_dir
from crlkit.train import evaluate
from crlkit.train.evaluate import Evaluator


def minari_evaluator(
    ds: Dataset, episodes: int, echo: Callable[[str], Any] = lambda _: None
) -> Evaluator:
    """evaluator(nets, actor_params, key) in the recovered env; {} when it cannot be rebuilt."""

    def evaluator(nets, params, key):
        policy = evaluate.actor_policy(nets, params)
        act = lambda s, g: _act(policy, s, g)  # noqa: E731 - one compile for every evaluation
        seed = int(jax.random.randint(key, (), 0, 2**31 - 1))
        hits = [_episode(env, act, ds, seed + i) for i in range(episodes)]
        return {"success": float(np.mean(hits))}

    try:  # the env `evaluator` steps
        import minari

        data_dir = local_data_dir(ds.metadata.get("path", ds.name))
        env = minari.MinariDataset(data_dir).recover_environment(eval_env=True)
    except Exception as err:  # a missing package or an unregistered env id: not evaluable here
        problem = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        echo(
            f"no evaluation: the env of {ds.name} cannot be rebuilt here ({problem}); training "
            f"goes on without it"
        )
        return lambda nets, params, key: {}
    return evaluator


@jax.jit
def _act(policy: evaluate.Policy, state: jax.Array, goal: jax.Array) -> jax.Array:
    """The deterministic action; `policy.apply` is static, so new parameters never recompile."""
    return policy(state, goal)


def _episode(env, act, ds: Dataset, seed: int) -> bool:
    """One episode of the deterministic actor; True once the env reports success."""
    obs, info = env.reset(seed=seed)
    while True:
        state, goal = _split(obs, ds)
        obs, _, terminated, truncated, info = env.step(np.asarray(act(state, goal)))
        if info.get("success", info.get("is_success", False)):
            return True
        if terminated or truncated:
            return False


def _split(obs: Any, ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """(state laid out as the dataset's rows, goal) of an env observation."""
    if not isinstance(obs, dict) or "desired_goal" not in obs:
        raise ValueError(f"env of {ds.name} has no desired_goal to evaluate goal reaching")
    state = np.asarray(obs["observation"], np.float32).reshape(-1)
    if state.size < ds.obs_dim and "achieved_goal" in obs:  # the reader appended achieved_goal
        state = np.concatenate([state, np.asarray(obs["achieved_goal"], np.float32).ravel()])
    return state, np.asarray(obs["desired_goal"], np.float32).reshape(-1)
