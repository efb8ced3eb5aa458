"""Settings of the offline loop: `OfflineConfig` and OGBench's per-dataset defaults (`resolve`)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from crlkit.checks import INT32_MAX, INT32_WHY, check_fields
from crlkit.config import LearnerConfig, ogbench_crl_learner, option_field, paper_offline_learner
from crlkit.data import goals
from crlkit.data.catalog import VERSIONED_NAMES, ogbench_env_id
from crlkit.data.dataset import Dataset
from crlkit.data.env_link import crlkit_env
from crlkit.envs.backends import BACKEND_CHOICES
from crlkit.envs.registry import REGISTRY, canonical_name

SAMPLERS = ("auto", "device", "host")
SEED_MAX = 2**32 - 1  # jax.random.key takes 32-bit seeds
# Full-size datasets get OGBench's budget; the shipped samples a quick one (a few CPU minutes).
OGBENCH_STEPS = 1_000_000
SAMPLE_STEPS = 2_000
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
# The presets `crlkit offline --preset` starts from (docs/offline.md):
#   paper: OGBench's CRL agent with the paper's residual towers at --depth (default 4);
#   ogbench: OGBench's CRL agent exactly (two critics, MLP 512x3, dot / sqrt(512), binary NCE);
#   same-as-online: the learner `crlkit online` trains (one critic, L2 energy, InfoNCE, tanh
#     Gaussian) with DDPG+BC, on the goal slice: crlkit's offline settings before presets.
PRESETS = ("paper", "ogbench", "same-as-online")
GOAL_SPACES = ("observation", "slice")


@dataclasses.dataclass(frozen=True)
class OfflineConfig:
    """Settings of `crlkit offline` besides the learner's. None means 'auto': decided per dataset
    by `plan_dataset` (each field's metadata says how)."""

    preset: str = option_field(
        "paper",
        "Agent the flags start from: paper (OGBench's CRL agent with the paper's residual towers "
        "at --depth), ogbench (OGBench's CRL agent exactly), same-as-online (the online "
        "learner with DDPG+BC on the goal slice). Any flag overrides its preset value.",
        PRESETS,
    )
    dataset: str | None = option_field(
        None,
        "Dataset: a catalog name (antmaze-large), an .npz path, a Minari dir or minari:<id>. "
        "Required.",
    )
    goal_indices: str | None = option_field(
        None,
        "Comma-separated observation columns that form a goal, for datasets that record none.",
        auto="the dataset's own, its catalog card's, or its env's",
    )
    goal_space: str | None = option_field(
        None,
        "What psi and the actor see as a goal: observation (the full goal observation, as "
        "OGBench) or slice (the goal columns only).",
        GOAL_SPACES,
        auto="observation for the paper and ogbench presets on OGBench's envs, whose own env "
        "gives goal observations; else slice",
    )
    data_dir: str | None = option_field(None, "OGBench cache directory.", auto="~/.ogbench/data")
    env: str | None = option_field(
        None,
        "Env to evaluate in: a crlkit env or an OGBench env id.",
        auto="the dataset's env",
    )
    backend: str = option_field(
        "auto", "Physics backend of the evaluation env (crlkit envs).", BACKEND_CHOICES
    )
    steps: int | None = option_field(
        None,
        "SGD steps.",
        auto=f"{OGBENCH_STEPS:,} (OGBench's budget), or {SAMPLE_STEPS:,} for the shipped sample "
        "datasets (a few CPU minutes)",
        minimum=1,
        maximum=INT32_MAX,
        maximum_why=INT32_WHY,
    )
    batch_size: int = option_field(
        1024, "Minibatch size (OGBench: 1024).", minimum=1, maximum=INT32_MAX
    )
    discount: float | None = option_field(
        None,
        "Geometric goal-offset discount of the critic's goals.",
        auto="0.995 for giant mazes and humanoidmaze, else 0.99 (OGBench)",
        above=0.0,
        below=1.0,
    )
    alpha: float | None = option_field(
        None,
        "Behaviour-cloning weight of the ddpg_bc actor loss.",
        auto="OGBench's per-family value (pointmaze 0.03, antmaze 0.1, humanoidmaze 0.1, "
        "antsoccer 0.3, cube/scene/puzzle play 3.0 and noisy 0.1, explore data 0.003, other 0.1)",
        minimum=0.0,
    )
    critic_p_current: float = option_field(
        0.0, "Share of critic goals that are the sampled state itself.", minimum=0.0, maximum=1.0
    )
    critic_p_random: float = option_field(
        0.0, "Share of critic goals drawn uniformly from the dataset.", minimum=0.0, maximum=1.0
    )
    critic_geometric: bool = option_field(
        True, "Critic trajectory goals at a geometric offset (else uniform over the future)."
    )
    actor_p_current: float = option_field(
        0.0, "Share of actor goals that are the sampled state itself.", minimum=0.0, maximum=1.0
    )
    actor_p_random: float | None = option_field(
        None,
        "Share of actor goals drawn uniformly from the dataset.",
        auto="0.5 on stitch, 1.0 on explore data, else 0 (OGBench)",
        minimum=0.0,
        maximum=1.0,
    )
    actor_geometric: bool = option_field(
        False, "Actor trajectory goals at a geometric offset (else uniform over the future)."
    )
    at_episode_end: str = option_field(
        "clip",
        "Geometric offsets past the episode end: clip (OGBench) or renormalize.",
        goals.AT_EPISODE_END,
    )
    sampler: str = option_field(
        "auto",
        "Where minibatches are drawn: device (dataset on the accelerator), host (NumPy), or auto "
        "(device when the dataset fits in --device-data-gb).",
        SAMPLERS,
    )
    device_data_gb: float = option_field(
        4.0, "auto sampler: largest dataset (GB) put on the device.", minimum=0.0
    )
    log_every: int = option_field(
        500, "SGD steps between log events (metrics.jsonl, progress bar).", minimum=1
    )
    eval_every: int = option_field(
        100_000,
        "SGD steps between evaluations (always one at the end); 0: only at the end.",
        minimum=0,
    )
    eval_episodes: int = option_field(
        50, "Evaluation episodes per OGBench task (5 tasks).", minimum=1
    )
    checkpoint_every: int | None = option_field(
        None,
        "SGD steps between checkpoints (always one at the end).",
        auto="at every evaluation",
        minimum=1,
    )
    keep_checkpoints: int = option_field(3, "Newest checkpoints kept in the run dir.", minimum=1)
    seed: int = option_field(
        0,
        "Seed of the networks, minibatch sampling and evaluation.",
        minimum=0,
        maximum=SEED_MAX,
        maximum_why="a 32-bit seed",
    )
    out: str | None = option_field(
        None, "Run directory.", auto="runs/<dataset>-d<depth>-s<seed>-<time>"
    )

    def __post_init__(self) -> None:
        check_fields(self)
        parse_goal_indices(self.goal_indices)
        _mix(self.critic_p_current, self.critic_p_random, self.critic_geometric, "critic")
        if self.actor_p_random is not None:
            self.actor_goals()

    def critic_goals(self) -> goals.GoalMix:
        """The critic's goal mixture."""
        return _mix(self.critic_p_current, self.critic_p_random, self.critic_geometric, "critic")

    def actor_goals(self) -> goals.GoalMix:
        """The actor's goal mixture (call on a resolved config)."""
        return _mix(self.actor_p_current, self.actor_p_random, self.actor_geometric, "actor")


def _mix(p_current: float, p_random: float, geometric: bool, who: str) -> goals.GoalMix:
    try:
        return goals.GoalMix(p_current, 1.0 - p_current - p_random, p_random, geometric)
    except ValueError:
        raise ValueError(
            f"--{who}-p-current {p_current} and --{who}-p-random {p_random} must be >= 0 and sum "
            f"to at most 1"
        ) from None


def dataset_family(ds: Dataset) -> tuple[str, str]:
    """(family, data type) of a dataset from its env/name: ('antmaze', 'navigate') and the like."""
    name = str(ds.metadata.get("env") or ds.name).lower()
    family = Path(name).name.split("-")[0]
    full = ds.name.lower()
    kind = next((k for k in ("stitch", "explore", "noisy", "play") if f"-{k}" in full), "navigate")
    return family, str(ds.metadata.get("dataset_type") or ds.metadata.get("style") or kind)


def preset_learner(preset: str, depth: int = 4) -> LearnerConfig:
    """The learner a preset starts from (the BC weight is resolved per dataset by `resolve`)."""
    if preset == "ogbench":
        return ogbench_crl_learner(DEFAULT_ALPHA)
    if preset == "paper":
        return paper_offline_learner(depth, DEFAULT_ALPHA)
    if preset == "same-as-online":
        return LearnerConfig(actor_loss="ddpg_bc")
    raise ValueError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}")


def bc_alpha(family: str, kind: str) -> float:
    """OGBench's DDPG+BC weight for a dataset family and data type."""
    if kind == "explore":
        return EXPLORE_ALPHA
    if family in MANIPULATION and kind == "noisy":
        return NOISY_MANIPULATION_ALPHA
    return FAMILY_ALPHA.get(family, DEFAULT_ALPHA)


@dataclasses.dataclass(frozen=True)
class DatasetPlan:
    """What a dataset means for an offline run, decided once by `plan_dataset`.

    Written verbatim into config.json (`dataset.plan`); the loop, the evaluators and render read
    it and never infer any of it again.
    """

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


def plan_dataset(cfg: OfflineConfig, ds: Dataset) -> DatasetPlan:
    """Every per-dataset decision of an offline run (OGBench's defaults where a flag is auto)."""
    family, kind = dataset_family(ds)
    giant = "giant" in ds.name.lower() or "giant" in str(ds.metadata.get("env", ""))
    sample = ds.metadata.get("source") == "sample"
    target = find_eval_target(cfg, ds)  # None: make_evaluator says so, in one line
    env = target[1] if target and target[0] == "crlkit" else None
    ogbench_id = target[1] if target and target[0] == "ogbench" else None
    if env is not None:
        ogbench_id = REGISTRY[env].ogbench_env_id
    goal_space = cfg.goal_space
    if goal_space is None:  # OGBench's goal observations where its env can evaluate them
        whole = cfg.preset != "same-as-online" and ogbench_id is not None
        goal_space = "observation" if whole else "slice"
    whole_goals = tuple(range(ds.obs_dim))
    if goal_space == "observation" and env is not None and tuple(ds.goal_indices) != whole_goals:
        if ogbench_id:  # crlkit's env has no goal observations: OGBench's own env has
            target = ("ogbench", ogbench_id)
    return DatasetPlan(
        family=family,
        data_type=kind,
        goal_space=goal_space,
        goal_indices=whole_goals if goal_space == "observation" else tuple(ds.goal_indices),
        env_goal_indices=tuple(ds.goal_indices),
        env=env,
        eval_target=target,
        default_steps=SAMPLE_STEPS if sample else OGBENCH_STEPS,
        bc_alpha=float(_auto(cfg.alpha, bc_alpha(family, kind))),
        discount=_auto(cfg.discount, 0.995 if giant or family == "humanoidmaze" else 0.99),
        actor_p_random=_auto(cfg.actor_p_random, goals.ACTOR_P_RANDOM.get(kind, 0.0)),
    )


def _auto(value: Any, resolved: Any) -> Any:
    """A flag's value, or what its `auto` (None) resolves to."""
    return resolved if value is None else value


def apply_plan(
    cfg: OfflineConfig, lcfg: LearnerConfig, plan: DatasetPlan
) -> tuple[OfflineConfig, LearnerConfig]:
    """The configs with every auto setting filled from `plan` (concrete, validated)."""
    cfg = dataclasses.replace(
        cfg,
        steps=_auto(cfg.steps, plan.default_steps),
        discount=plan.discount,
        alpha=plan.bc_alpha,
        actor_p_random=plan.actor_p_random,
        goal_space=plan.goal_space,
    )
    return cfg, dataclasses.replace(lcfg, bc_alpha=plan.bc_alpha)


def resolve(
    cfg: OfflineConfig, lcfg: LearnerConfig, ds: Dataset
) -> tuple[OfflineConfig, LearnerConfig]:
    """`apply_plan(cfg, lcfg, plan_dataset(cfg, ds))`: the concrete configs for this dataset."""
    return apply_plan(cfg, lcfg, plan_dataset(cfg, ds))


def eval_target(cfg: OfflineConfig, ds: Dataset) -> tuple[str, str]:
    """('crlkit', env name) or ('ogbench', gymnasium env id) to evaluate `ds`'s policy in."""
    target = find_eval_target(cfg, ds)
    if target is None:
        raise ValueError(no_env_message(ds))
    return target


def no_env_message(ds: Dataset) -> str:
    """The one-line error for a dataset that names no env to evaluate in."""
    return (
        f"dataset {ds.name!r} names no env to evaluate in; pass --env (a crlkit env from "
        f"`crlkit envs` or an OGBench env id such as cube-single-v0)"
    )


def find_eval_target(cfg: OfflineConfig, ds: Dataset) -> tuple[str, str] | None:
    """`eval_target`, or None when neither --env nor the dataset names an env."""
    name = cfg.env or str(ds.metadata.get("env") or "")
    if name:
        try:
            canon = canonical_name(name)
        except ValueError:
            canon = None
        if canon is not None:  # OGBench's tasks where the env has them, else fresh goals
            return "crlkit", canon
        if cfg.env and not VERSIONED_NAMES.fullmatch(cfg.env):
            canonical_name(cfg.env)  # raises: unknown env, did you mean ...
    env_id = cfg.env or str(ds.metadata.get("ogbench_env_id") or "")
    if not env_id and ds.metadata.get("format") == "minari":
        return "minari", ds.name  # the env its env_spec records, when it can be rebuilt
    env_id = env_id or ogbench_env_id(ds.name)
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
