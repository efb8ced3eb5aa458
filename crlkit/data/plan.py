"""What a dataset means for an offline run, decided once: `plan_dataset` -> `DatasetPlan`.

The family and data type, the goal space and its columns, the env to evaluate in, the SGD budget
of `--steps auto`, and OGBench's per-dataset defaults (BC weight, discount, the actor's
random-goal share) where a flag left them to the dataset. The offline loop writes the plan
verbatim into config.json; the loop, the evaluators, render and `crlkit eval` read it and never
infer any of it again.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from crlkit.data import goals
from crlkit.data.catalog import VERSIONED_NAMES, ogbench_env_id
from crlkit.data.dataset import Dataset, check_env
from crlkit.data.env_link import crlkit_env
from crlkit.envs.registry import REGISTRY, canonical_name, make_spec

# Full-size datasets get OGBench's budget; the shipped samples a quick one (a few CPU minutes).
OGBENCH_STEPS = 1_000_000
SAMPLE_STEPS = 2_000
GOAL_SPACES = ("observation", "slice")
# OGBench's CRL actor (DDPG+BC) weights by dataset family; `explore` data uses its own.
FAMILY_ALPHA = {
    "pointmaze": 0.03,
    "antmaze": 0.1,
    "humanoidmaze": 0.1,
    "antsoccer": 0.3,
    "cube": 3.0,
    "scene": 3.0,
    "puzzle": 3.0,
}
EXPLORE_ALPHA = 0.003
NOISY_MANIPULATION_ALPHA = 0.1  # cube/scene/puzzle `noisy` data (play data: 3.0)
DEFAULT_ALPHA = 0.1
MANIPULATION = ("cube", "scene", "puzzle")


@dataclasses.dataclass(frozen=True)
class DatasetPlan:
    """What a dataset means for an offline run, decided once by `plan_dataset`."""

    family: str  # pointmaze, antmaze, cube, ... (from the dataset's env or name)
    data_type: str  # navigate, stitch, explore, noisy, play
    goal_space: str  # observation (psi and the actor see whole goal observations) or slice
    goal_indices: tuple[int, ...]  # the observation columns psi and the actor see as a goal
    env_goal_indices: tuple[int, ...]  # the env's goal slice (the dataset's own goal columns)
    env: str | None  # the crlkit env of the data (render, collect), if crlkit has one
    eval_target: tuple[str, str] | None  # (crlkit | ogbench | minari, name); None: no env named
    default_steps: int  # the SGD budget of --steps auto for this dataset
    bc_alpha: float
    discount: float
    actor_p_random: float

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (lists for tuples), as config.json stores it."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


def plan_dataset(
    ds: Dataset,
    *,
    env: str | None = None,
    goal_space: str | None = None,
    observation_goals: bool = True,
    alpha: float | None = None,
    discount: float | None = None,
    actor_p_random: float | None = None,
) -> DatasetPlan:
    """Every per-dataset decision of an offline run; OGBench's defaults where a value is None.

    Args:
      ds: the loaded dataset (its own goal columns).
      env: the env the user named (--env), else the dataset's.
      goal_space: observation or slice; None: observation where `observation_goals` and OGBench's
        env can build goal observations, else slice.
      observation_goals: the agent takes OGBench's whole goal observations when it can (every
        preset but same-as-online), not the goal slice (same-as-online).
      alpha, discount, actor_p_random: the user's values; None: OGBench's for this dataset.
    """
    family, kind = dataset_family(ds)
    giant = "giant" in ds.name.lower() or "giant" in str(ds.metadata.get("env", ""))
    sample = ds.metadata.get("source") == "sample"
    target = find_eval_target(ds, env)  # None: the evaluator says so, in one line
    crlkit_name = target[1] if target and target[0] == "crlkit" else None
    ogbench_id = target[1] if target and target[0] == "ogbench" else None
    if crlkit_name is not None:
        ogbench_id = REGISTRY[crlkit_name].ogbench_env_id
    if goal_space is None:  # OGBench's goal observations where its env can evaluate them
        goal_space = "observation" if observation_goals and ogbench_id is not None else "slice"
    whole_goals = tuple(range(ds.obs_dim))
    if goal_space == "observation" and crlkit_name and tuple(ds.goal_indices) != whole_goals:
        if ogbench_id:  # crlkit's env has no goal observations: OGBench's own env has
            target = ("ogbench", ogbench_id)
    return DatasetPlan(
        family=family,
        data_type=kind,
        goal_space=goal_space,
        goal_indices=whole_goals if goal_space == "observation" else tuple(ds.goal_indices),
        env_goal_indices=tuple(ds.goal_indices),
        env=crlkit_name,
        eval_target=target,
        default_steps=SAMPLE_STEPS if sample else OGBENCH_STEPS,
        bc_alpha=float(_auto(alpha, bc_alpha(family, kind))),
        discount=_auto(discount, 0.995 if giant or family == "humanoidmaze" else 0.99),
        actor_p_random=_auto(actor_p_random, goals.ACTOR_P_RANDOM.get(kind, 0.0)),
    )


def _auto(value: Any, resolved: Any) -> Any:
    """The user's value, or what its auto (None) resolves to for this dataset."""
    return resolved if value is None else value


def check_fits(ds: Dataset, plan: DatasetPlan) -> None:
    """Raises DatasetError (one line, naming crlkit's env) when the data does not fit the crlkit
    env of its plan: sizes and goal slice, before OGBench's env (if that evaluates) is built."""
    if plan.env is not None:
        check_env(dataclasses.replace(ds, goal_indices=plan.env_goal_indices), make_spec(plan.env))


def dataset_family(ds: Dataset) -> tuple[str, str]:
    """(family, data type) of a dataset from its env/name: ('antmaze', 'navigate') and the like."""
    name = str(ds.metadata.get("env") or ds.name).lower()
    family = Path(name).name.split("-")[0]
    full = ds.name.lower()
    kind = next((k for k in ("stitch", "explore", "noisy", "play") if f"-{k}" in full), "navigate")
    return family, str(ds.metadata.get("dataset_type") or ds.metadata.get("style") or kind)


def bc_alpha(family: str, kind: str) -> float:
    """OGBench's DDPG+BC weight for a dataset family and data type."""
    if kind == "explore":
        return EXPLORE_ALPHA
    if family in MANIPULATION and kind == "noisy":
        return NOISY_MANIPULATION_ALPHA
    return FAMILY_ALPHA.get(family, DEFAULT_ALPHA)


def eval_target(ds: Dataset, env: str | None = None) -> tuple[str, str]:
    """('crlkit', env name) or ('ogbench', gymnasium env id) to evaluate `ds`'s policy in."""
    target = find_eval_target(ds, env)
    if target is None:
        raise ValueError(no_env_message(ds))
    return target


def no_env_message(ds: Dataset) -> str:
    """The one-line error for a dataset that names no env to evaluate in."""
    return (
        f"dataset {ds.name!r} names no env to evaluate in; pass --env (a crlkit env from "
        f"`crlkit envs` or an OGBench env id such as cube-single-v0)"
    )


def find_eval_target(ds: Dataset, env: str | None = None) -> tuple[str, str] | None:
    """`eval_target`, or None when neither `env` (--env) nor the dataset names an env."""
    recorded_id = str(ds.metadata.get("ogbench_env_id") or "")
    env_id = env or recorded_id or ogbench_env_id(ds.name)
    minari = not (env or recorded_id) and ds.metadata.get("format") == "minari"
    name = env or str(ds.metadata.get("env") or "")
    if name:
        try:
            canon = canonical_name(name)
        except ValueError:
            canon = None
        if canon is not None:  # OGBench's tasks where the env has them, else fresh goals
            return "crlkit", canon
        if env and not VERSIONED_NAMES.fullmatch(env):
            canonical_name(env)  # raises: unknown env, did you mean ...
    if minari:
        return "minari", ds.name  # the env its env_spec records, when it can be rebuilt
    if not env_id:
        return None
    twin = crlkit_env(env_id)  # an OGBench id crlkit has with OGBench's tasks
    return ("crlkit", twin) if twin else ("ogbench", env_id)


def parse_goal_indices(text: str | None) -> tuple[int, ...] | None:
    """'0,1' -> (0, 1); None -> None; a one-line ValueError for anything else."""
    if text is None:
        return None
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(
            f"--goal-indices {text!r} must be comma-separated column numbers, e.g. 0,1"
        ) from None
