"""Settings of the offline loop: `OfflineConfig`, its presets, and the configs a dataset's plan
(crlkit/data/plan.py) completes (`apply_plan`, `resolve`)."""

from __future__ import annotations

import dataclasses
from typing import Any

from crlkit.checks import INT32_MAX, INT32_WHY, check_fields
from crlkit.config import (
    LearnerConfig,
    ogbench_crl_learner,
    option_field,
    paper_offline_learner,
    quickstart_offline_learner,
)
from crlkit.data import goals
from crlkit.data.catalog import load_catalog
from crlkit.data.dataset import Dataset
from crlkit.data.plan import (
    DEFAULT_ALPHA,
    GOAL_SPACES,
    OGBENCH_STEPS,
    SAMPLE_STEPS,
    DatasetPlan,
    parse_goal_indices,
    plan_dataset,
)
from crlkit.envs.backends import BACKEND_CHOICES

SAMPLERS = ("auto", "device", "host")
SEED_MAX = 2**32 - 1  # jax.random.key takes 32-bit seeds
# The presets `crlkit offline --preset` starts from (docs/offline.md):
#   quickstart: the shipped sample's quick start (chosen by measurement: docs/benchmarks.md);
#   paper: OGBench's CRL agent with the paper's residual towers at --depth (default 4);
#   ogbench: OGBench's CRL agent exactly (two critics, MLP 512x3, dot / sqrt(512), binary NCE);
#   same-as-online: the learner `crlkit online` trains (one critic, L2 energy, InfoNCE, tanh
#     Gaussian) with DDPG+BC, on the goal slice: crlkit's offline settings before presets.
PRESETS = ("quickstart", "paper", "ogbench", "same-as-online")
QUICKSTART_DATASET = "pointmaze-medium-navigate-sample"  # a bare `crlkit offline` trains on it
QUICKSTART_STEPS = 8_000  # the quickstart preset's budget (docs/benchmarks.md: its grid)


@dataclasses.dataclass(frozen=True)
class OfflineConfig:
    """Settings of `crlkit offline` besides the learner's. None means 'auto': decided per dataset
    by crlkit/data/plan.py's `plan_dataset` (each field's metadata says how)."""

    preset: str | None = option_field(
        None,
        "Agent the flags start from: quickstart (a small agent that learns on the shipped sample "
        "in a few CPU minutes), paper (OGBench's CRL agent with the paper's residual towers at "
        "--depth), ogbench (OGBench's CRL agent exactly), same-as-online (the online learner "
        "with DDPG+BC on the goal slice). Any flag overrides its preset value.",
        PRESETS,
        auto="quickstart on the shipped sample datasets, else paper",
    )
    dataset: str | None = option_field(
        None,
        "Dataset: a catalog name (antmaze-large), an .npz path, a Minari dir or minari:<id>.",
        auto=f"{QUICKSTART_DATASET} (the shipped sample: the quick start)",
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
        auto=f"{QUICKSTART_STEPS:,} with the quickstart preset; else {OGBENCH_STEPS:,} (OGBench's "
        f"budget), or {SAMPLE_STEPS:,} on the shipped sample datasets",
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

    def dataset_choices(self) -> dict[str, Any]:
        """The flags `plan_dataset` decides a dataset's meaning with (None: OGBench's value)."""
        return {
            "env": self.env,
            "goal_space": self.goal_space,
            "observation_goals": self.preset != "same-as-online",
            "alpha": self.alpha,
            "discount": self.discount,
            "actor_p_random": self.actor_p_random,
        }

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


def choose_preset(cfg: OfflineConfig) -> OfflineConfig:
    """`cfg` with its dataset and preset decided: no --dataset trains on the shipped sample, and
    the auto preset is quickstart on the shipped samples (their catalog cards say `sample`),
    paper on anything else. The quickstart preset brings its own budget (QUICKSTART_STEPS)
    unless --steps is given."""
    dataset = cfg.dataset or QUICKSTART_DATASET
    preset = cfg.preset
    if preset is None:
        card = load_catalog().get(dataset)
        preset = "quickstart" if card is not None and card.source == "sample" else "paper"
    steps = QUICKSTART_STEPS if preset == "quickstart" and cfg.steps is None else cfg.steps
    return dataclasses.replace(cfg, dataset=dataset, preset=preset, steps=steps)


def preset_learner(preset: str, depth: int = 4) -> LearnerConfig:
    """The learner a preset starts from (the BC weight is resolved per dataset by `resolve`)."""
    if preset == "quickstart":
        return quickstart_offline_learner()
    if preset == "ogbench":
        return ogbench_crl_learner(DEFAULT_ALPHA)
    if preset == "paper":
        return paper_offline_learner(depth, DEFAULT_ALPHA)
    if preset == "same-as-online":
        return LearnerConfig(actor_loss="ddpg_bc")
    raise ValueError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}")


def apply_plan(
    cfg: OfflineConfig, lcfg: LearnerConfig, plan: DatasetPlan
) -> tuple[OfflineConfig, LearnerConfig]:
    """The configs with every auto setting filled from `plan` (concrete, validated)."""
    cfg = dataclasses.replace(
        cfg,
        steps=plan.default_steps if cfg.steps is None else cfg.steps,
        discount=plan.discount,
        alpha=plan.bc_alpha,
        actor_p_random=plan.actor_p_random,
        goal_space=plan.goal_space,
    )
    return cfg, dataclasses.replace(lcfg, bc_alpha=plan.bc_alpha)


def resolve(
    cfg: OfflineConfig, lcfg: LearnerConfig, ds: Dataset
) -> tuple[OfflineConfig, LearnerConfig]:
    """The concrete configs for this dataset: `apply_plan` of its `plan_dataset`."""
    return apply_plan(cfg, lcfg, plan_dataset(ds, **cfg.dataset_choices()))
