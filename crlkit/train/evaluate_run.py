"""`crlkit eval`: evaluate a saved run's checkpoint without training or rendering.

The run's own evaluation is reused, not re-implemented: online runs call the online loop's
`evaluate_actor` (fresh goals, and OGBench's tasks where the env has them), offline runs rebuild
the run's evaluator from its config.json (`prepare`: the same dataset plan and env) and call the
offline loop's `evaluate_actor`. The keys come from the loops' own derivations of (seed, step), so
the default seed reproduces the run's final evaluation (summary.json) exactly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crlkit import metric_names as names
from crlkit.config import LearnerConfig, from_dict
from crlkit.runs.actor import checkpoint_step, load_actor
from crlkit.runs.checkpoint import RunDirError
from crlkit.runs.rundir import read_run_config

WHICH = ("default", "tasks", "fresh-goals")


@dataclasses.dataclass(frozen=True)
class Sizes:
    """The network input sizes `load_actor` checks a checkpoint against."""

    name: str
    state_dim: int
    goal_dim: int
    action_dim: int


def evaluate_run(
    run_dir: str | Path,
    *,
    step: int | None = None,
    episodes: int | None = None,
    which: str = "default",
    seed: int | None = None,
    echo: Callable[[str], Any] = lambda _: None,
) -> dict[str, Any]:
    """Evaluate the actor of `run_dir`'s newest (or `step`) checkpoint; returns the metrics.

    Args:
      run_dir: an online or offline run directory.
      step: the checkpoint's step (env steps online, SGD steps offline); None: the newest.
      episodes: fresh-goal episodes and episodes per task (None: the run's eval settings).
      which: "default" (what the run's evaluations did), "tasks" (OGBench's fixed tasks only)
        or "fresh-goals" (random start/goal pairs only).
      seed: the seed the evaluation keys derive from (None: the run's seed, which reproduces
        the run's own evaluation at that step).

    Returns the `eval/...` (and `eval_tasks/...`) metrics plus run_dir, regime, step, seed,
    episode_length. Raises ValueError (one line) for a run dir without config or checkpoint,
    an unknown step, or an evaluation the run's env cannot do.
    """
    if which not in WHICH:
        raise ValueError(f"unknown evaluation {which!r}; valid: {', '.join(WHICH)}")
    if episodes is not None and episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")
    try:
        config = read_run_config(run_dir)
        saved = checkpoint_step(run_dir, step)
    except RunDirError as err:
        raise ValueError(str(err)) from None
    if "online" in config:
        out = _evaluate_online(run_dir, config, saved, episodes, which, seed, echo)
    elif "offline" in config:
        out = _evaluate_offline(run_dir, config, saved, episodes, which, seed, echo)
    else:
        raise ValueError(f"{run_dir}: config.json has neither an online nor an offline section")
    return {"run_dir": str(run_dir), "step": saved, **out}


def _evaluate_online(run_dir, config, saved, episodes, which, seed, echo) -> dict[str, Any]:
    from crlkit.train.online.config import configs_from_dict
    from crlkit.train.online.epoch import make_env
    from crlkit.train.online.loop import evaluate_actor

    cfg, _ = configs_from_dict(config)
    if seed is not None:
        cfg = dataclasses.replace(cfg, seed=seed)
    if episodes is not None:
        cfg = dataclasses.replace(cfg, eval_episodes=episodes, eval_episodes_per_task=episodes)
    env = make_env(cfg.eval_env or cfg.env, cfg.backend)
    if which == "tasks" and not (env.spec.num_tasks and cfg.eval_episodes_per_task):
        raise ValueError(f"env {env.spec.name!r} has no fixed evaluation tasks; use --fresh-goals")
    spec = env.spec
    nets, params = load_actor(run_dir, spec, saved)
    done = saved // cfg.steps_per_train_step  # checkpoints are named by env steps
    echo(f"evaluating {run_dir} at env step {saved:,} in {spec.name} ...")
    out = evaluate_actor(
        cfg, nets, params, env, done, fresh=which != "tasks", tasks=which != "fresh-goals"
    )
    info = {"regime": "online", "env": spec.name, "seed": cfg.seed}
    return {**info, "episode_length": spec.episode_length, **out}


def _evaluate_offline(run_dir, config, saved, episodes, which, seed, echo) -> dict[str, Any]:
    from crlkit.envs import make
    from crlkit.train import evaluate
    from crlkit.train.offline.config import OfflineConfig
    from crlkit.train.offline.evaluators import FRESH_GOAL_TASKS
    from crlkit.train.offline.loop import dims_of, evaluate_actor, prepare

    cfg = from_dict(OfflineConfig, config["offline"])
    lcfg = from_dict(LearnerConfig, config["learner"])
    if seed is not None:
        cfg = dataclasses.replace(cfg, seed=seed)
    if episodes is not None:
        cfg = dataclasses.replace(cfg, eval_episodes=episodes)
    cfg, lcfg, ds, evaluator = prepare(cfg, lcfg, echo)
    plan = ds.metadata["plan"]
    env = make(plan["env"], cfg.backend) if plan.get("env") else None
    if which == "fresh-goals":
        if env is None:
            raise ValueError(f"dataset {ds.name!r} has no crlkit env for fresh goals; use --tasks")
        count = FRESH_GOAL_TASKS * cfg.eval_episodes

        def evaluator(nets, params, key):
            policy = evaluate.actor_policy(nets, params)
            return evaluate.evaluate_fresh_goals(env, policy, key, count)

    elif which == "tasks" and env is not None and env.spec.num_tasks == 0:
        raise ValueError(f"env {env.spec.name!r} has no fixed evaluation tasks; use --fresh-goals")
    sizes = Sizes(ds.name, *dataclasses.astuple(dims_of(ds)))
    nets, params = load_actor(run_dir, sizes, saved)
    echo(f"evaluating {run_dir} at SGD step {saved:,} on {plan['eval_target'][1]} ...")
    out = evaluate_actor(evaluator, nets, params, cfg.seed, saved)
    length = env.spec.episode_length if env is not None else None
    info = {"regime": "offline", "dataset": ds.name, "seed": cfg.seed}
    return {**info, "episode_length": length, **out}


def result_line(result: dict[str, Any]) -> str:
    """The one line `crlkit eval` prints: success, time at goal in steps, per-task successes."""
    parts = [f"{result['regime']} run at step {result['step']:,} (seed {result['seed']})"]
    if names.SUCCESS in result:
        parts.append(f"success {result[names.SUCCESS]:.3f}")
    steps = result.get(names.STEPS_AT_GOAL)
    if steps is not None and result.get("episode_length"):
        parts.append(f"steps_at_goal {steps:.0f}/{result['episode_length']}")
    if names.TASKS_SUCCESS in result:
        parts.append(f"tasks success {result[names.TASKS_SUCCESS]:.3f}")
    tasks = names.task_ids(result)
    if tasks:
        parts.append("tasks " + " ".join(f"{result[f'eval/task{k}_success']:.2f}" for k in tasks))
    return "; ".join(parts)
