"""Settings of the offline loop: `OfflineConfig` and OGBench's per-dataset defaults (`resolve`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from crlkit.config import LearnerConfig, ogbench_crl_learner, option_field, paper_offline_learner
from crlkit.data import goals
from crlkit.data.catalog import VERSIONED_NAMES, ogbench_env_id
from crlkit.data.dataset import Dataset
from crlkit.data.env_link import crlkit_env
from crlkit.envs.backends import BACKEND_CHOICES
from crlkit.envs.registry import REGISTRY, canonical_name

SAMPLERS = ("auto", "device", "host")
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
GOAL_SPACES = ("auto", "observation", "slice")


@dataclasses.dataclass(frozen=True)
class OfflineConfig:
    """Settings of `crlkit offline` besides the learner's. Zero/negative sentinels mean 'auto'."""

    preset: str = option_field(
        "paper",
        "Agent the flags start from: paper (OGBench's CRL agent with the paper's residual towers "
        "at --depth), ogbench (OGBench's CRL agent exactly), same-as-online (the online "
        "learner with DDPG+BC on the goal slice). Any flag overrides its preset value.",
        PRESETS,
    )
    dataset: str = option_field(
        "", "Dataset: a catalog name (antmaze-large), an .npz path, a Minari dir or minari:<id>."
    )
    goal_indices: str = option_field(
        "",
        "Comma-separated observation columns that form a goal, for datasets that record none "
        "(default: the dataset's own, its catalog card's, or its env's).",
    )
    goal_space: str = option_field(
        "auto",
        "What psi and the actor see as a goal: observation (the full goal observation, as "
        "OGBench), slice (the goal columns only), auto (observation for the paper and ogbench "
        "presets on OGBench's envs, whose own env gives goal observations; else slice).",
        GOAL_SPACES,
    )
    data_dir: str = option_field("", "OGBench cache directory (default ~/.ogbench/data).")
    env: str = option_field(
        "", "Env to evaluate in: a crlkit env or an OGBench env id (default: the dataset's env)."
    )
    backend: str = option_field(
        "auto", "Physics backend of the evaluation env (crlkit envs).", BACKEND_CHOICES
    )
    steps: int = option_field(
        0,
        f"SGD steps; 0: {OGBENCH_STEPS:,} (OGBench's budget), or {SAMPLE_STEPS:,} for the shipped "
        f"sample datasets (a few CPU minutes).",
    )
    batch_size: int = option_field(1024, "Minibatch size (OGBench: 1024).")
    discount: float = option_field(
        0.0,
        "Geometric goal-offset discount of the critic's goals; 0: 0.995 for giant mazes and "
        "humanoidmaze, else 0.99 (OGBench).",
    )
    alpha: float = option_field(
        -1.0,
        "Behaviour-cloning weight of the ddpg_bc actor loss; negative: OGBench's per-family value "
        "(pointmaze 0.03, antmaze 0.1, humanoidmaze 0.1, antsoccer 0.3, cube/scene/puzzle play "
        "3.0 and noisy 0.1, explore data 0.003, other 0.1).",
    )
    critic_p_current: float = option_field(
        0.0, "Share of critic goals that are the sampled state itself."
    )
    critic_p_random: float = option_field(
        0.0, "Share of critic goals drawn uniformly from the dataset."
    )
    critic_geometric: bool = option_field(
        True, "Critic trajectory goals at a geometric offset (else uniform over the future)."
    )
    actor_p_current: float = option_field(
        0.0, "Share of actor goals that are the sampled state itself."
    )
    actor_p_random: float = option_field(
        -1.0,
        "Share of actor goals drawn uniformly from the dataset; negative: 0.5 on stitch, 1.0 on "
        "explore data, else 0 (OGBench).",
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
        4.0, "auto sampler: largest dataset (GB) put on the device."
    )
    log_every: int = option_field(
        500, "SGD steps between log events (metrics.jsonl, progress bar)."
    )
    eval_every: int = option_field(
        100_000, "SGD steps between evaluations (always one at the end); 0: only at the end."
    )
    eval_episodes: int = option_field(50, "Evaluation episodes per OGBench task (5 tasks); >= 1.")
    checkpoint_every: int = option_field(
        0, "SGD steps between checkpoints (always one at the end); 0: at every evaluation."
    )
    keep_checkpoints: int = option_field(3, "Newest checkpoints kept in the run dir.")
    seed: int = option_field(0, "Seed of the networks, minibatch sampling and evaluation.")
    out: str = option_field("", "Run directory (default runs/<dataset>-d<depth>-<time>).")

    def __post_init__(self) -> None:
        positive = ("batch_size", "log_every", "eval_episodes", "keep_checkpoints")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{_flag(name)} must be an integer >= 1, got {value!r}")
        for name in ("steps", "eval_every", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{_flag(name)} must be >= 0, got {getattr(self, name)!r}")
        if not (self.discount == 0.0 or 0.0 < self.discount < 1.0):
            raise ValueError(f"--discount must lie in (0, 1) (or 0 for auto), got {self.discount}")
        if self.backend not in BACKEND_CHOICES:
            valid = ", ".join(BACKEND_CHOICES)
            raise ValueError(f"unknown backend {self.backend!r}; valid: {valid}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; valid: {', '.join(SAMPLERS)}")
        for name, choices in (("preset", PRESETS), ("goal_space", GOAL_SPACES)):
            if getattr(self, name) not in choices:
                valid = ", ".join(choices)
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; valid: {valid}")
        parse_goal_indices(self.goal_indices)
        if self.at_episode_end not in goals.AT_EPISODE_END:
            valid = ", ".join(goals.AT_EPISODE_END)
            raise ValueError(f"unknown at_episode_end {self.at_episode_end!r}; valid: {valid}")
        if self.device_data_gb < 0:
            raise ValueError(f"--device-data-gb must be >= 0, got {self.device_data_gb}")

    def critic_goals(self) -> goals.GoalMix:
        """The critic's goal mixture."""
        return _mix(self.critic_p_current, self.critic_p_random, self.critic_geometric, "critic")

    def actor_goals(self) -> goals.GoalMix:
        """The actor's goal mixture (call on a resolved config)."""
        return _mix(self.actor_p_current, self.actor_p_random, self.actor_geometric, "actor")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


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


def resolve(
    cfg: OfflineConfig, lcfg: LearnerConfig, ds: Dataset
) -> tuple[OfflineConfig, LearnerConfig]:
    """Fill the 'auto' settings for this dataset (OGBench's defaults); returns concrete configs."""
    family, kind = dataset_family(ds)
    giant = "giant" in ds.name.lower() or "giant" in str(ds.metadata.get("env", ""))
    steps = cfg.steps or (SAMPLE_STEPS if ds.metadata.get("source") == "sample" else OGBENCH_STEPS)
    discount = cfg.discount or (0.995 if giant or family == "humanoidmaze" else 0.99)
    alpha = cfg.alpha if cfg.alpha >= 0 else bc_alpha(family, kind)
    p_random = cfg.actor_p_random
    if p_random < 0:
        p_random = goals.ACTOR_P_RANDOM.get(kind, 0.0)
    goal_space = cfg.goal_space
    if goal_space == "auto":  # OGBench's goal observations where its env can evaluate them
        whole = cfg.preset != "same-as-online" and goal_observations_evaluable(cfg, ds)
        goal_space = "observation" if whole else "slice"
    cfg = dataclasses.replace(
        cfg, steps=steps, discount=discount, alpha=alpha, actor_p_random=p_random,
        goal_space=goal_space,
    )  # fmt: skip
    cfg.critic_goals(), cfg.actor_goals()  # validate the mixtures now, with one-line errors
    return cfg, dataclasses.replace(lcfg, bc_alpha=float(alpha))


def eval_target(cfg: OfflineConfig, ds: Dataset) -> tuple[str, str]:
    """('crlkit', env name) or ('ogbench', gymnasium env id) to evaluate `ds`'s policy in."""
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
        raise ValueError(
            f"dataset {ds.name!r} names no env to evaluate in; pass --env (a crlkit env from "
            f"`crlkit envs` or an OGBench env id such as cube-single-v0)"
        )
    twin = crlkit_env(env_id)  # an OGBench id crlkit has with OGBench's tasks
    return ("crlkit", twin) if twin else ("ogbench", env_id)


def goal_observations_evaluable(cfg: OfflineConfig, ds: Dataset) -> bool:
    """True when the env `ds` is evaluated in gives whole goal observations (OGBench's envs)."""
    try:
        kind, name = eval_target(cfg, ds)
    except ValueError:  # no env to evaluate in: make_evaluator says so, in one line
        return False
    return kind == "ogbench" or (kind == "crlkit" and bool(REGISTRY[name].ogbench_env_id))


def parse_goal_indices(text: str) -> tuple[int, ...] | None:
    """'0,1' -> (0, 1); '' -> None; a one-line ValueError for anything else."""
    if not text.strip():
        return None
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(
            f"--goal-indices {text!r} must be comma-separated column numbers, e.g. 0,1"
        ) from None
