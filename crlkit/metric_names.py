"""Names of the logged metrics and summary fields (one spelling; glossary in docs/metrics.md).

Both loops log `train/<learner metric>` means; evaluations log `eval/<metric>` (offline: OGBench's
tasks; online: fresh goals) and, online in maze envs with fixed tasks, `eval_tasks/<metric>`.
"""

from __future__ import annotations

TRAIN = "train/"
EVAL = "eval/"
EVAL_TASKS = "eval_tasks/"
ROLLOUT = "rollout/"
PERF = "perf/"

SUCCESS = EVAL + "success"
TIME_AT_GOAL = EVAL + "time_at_goal"
STEPS_AT_GOAL = EVAL + "steps_at_goal"
TASKS_SUCCESS = EVAL_TASKS + "success"
EVAL_SECONDS = EVAL + "seconds"
SGD_STEPS = "sgd_steps"
ENV_STEPS_PER_S = PERF + "env_steps_per_s"
SGD_STEPS_PER_S = PERF + "sgd_steps_per_s"
ROLLOUT_TIME_AT_GOAL = ROLLOUT + "time_at_goal"
ROLLOUT_EPISODES = ROLLOUT + "episodes"


def prefixed(prefix: str, metrics: dict[str, float]) -> dict[str, float]:
    """{name: v} -> {prefix + name: float(v)}."""
    return {prefix + k: float(v) for k, v in metrics.items()}


def headline_success(summary: dict) -> tuple[str, float] | None:
    """(name, value) of a run's headline success: OGBench's tasks if evaluated, else fresh goals."""
    for name in (TASKS_SUCCESS, SUCCESS):
        if summary.get(name) is not None:
            return name, float(summary[name])
    return None


def task_ids(summary: dict) -> list[int]:
    """The OGBench task numbers with an `eval/task<k>_success` entry, sorted."""
    names = (k.removeprefix(EVAL + "task").removesuffix("_success") for k in summary)
    return sorted(int(n) for n in names if n.isdigit())
