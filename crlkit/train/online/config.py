"""Settings of the online loop: `OnlineConfig`, the presets, and the run's config.json form."""

from __future__ import annotations

import dataclasses
from typing import Any

from crlkit.checks import INT32_MAX, INT32_WHY, check_fields
from crlkit.config import LearnerConfig, NetworkConfig, from_dict, option_field, to_dict
from crlkit.envs.backends import BACKEND_CHOICES

# Array sizes (envs, batch, replay rows per env) are indexed in int32 on the device.
SIZE_MAX = INT32_MAX
SEED_MAX = 2**32 - 1

# Changing these on --resume cannot change the trained parameters, so resume allows it.
RESUMABLE_FIELDS = (
    "online.steps",
    "online.eval_every",
    "online.eval_episodes",
    "online.eval_episodes_per_task",
    "online.log_every",
    "online.checkpoint_every",
    "online.buffer_in_checkpoint",
    "online.eval_env",
)


@dataclasses.dataclass(frozen=True)
class OnlineConfig:
    """The online loop's settings; defaults are the paper's (512 envs, unroll 62, batch 512, ...).

    The learner (networks, energy, losses, learning rates) is a separate `LearnerConfig`.
    """

    env: str = option_field("humanoid", "Env to train in (see: crlkit envs).")
    backend: str = option_field(
        "auto", "Physics backend; auto: native MuJoCo on CPU, mjx on GPU.", BACKEND_CHOICES
    )
    seed: int = option_field(
        0,
        "Seed of every random draw (params, envs, replay, evaluation).",
        minimum=0,
        maximum=SEED_MAX,
        maximum_why="a 32-bit seed",
    )
    steps: int = option_field(
        100_000_000,
        "Env-step budget; runs ceil(steps / (num_envs * unroll_length)) training steps and "
        "reports the exact count. At most 2**31-1 SGD updates in all (training steps x "
        "updates_per_step: the learner counts them in int32).",
        minimum=1,
    )
    num_envs: int = option_field(
        512, "Parallel envs stepped together.", minimum=1, maximum=SIZE_MAX
    )
    unroll_length: int = option_field(
        62, "Env steps per env between two rounds of SGD updates.", minimum=1, maximum=SIZE_MAX
    )
    batch_size: int = option_field(
        512,
        "Transitions per SGD minibatch (also the InfoNCE negatives).",
        minimum=1,
        maximum=SIZE_MAX,
    )
    updates_per_step: int = option_field(
        800,
        "SGD updates after each num_envs * unroll_length env steps "
        "(paper: 800 per 31,744 env steps, UTD about 1:40).",
        minimum=1,
        maximum=INT32_MAX,
        maximum_why=INT32_WHY,
    )
    gamma: float = option_field(
        0.99, "Discount of the geometric future-goal offset in relabelling.", above=0.0, below=1.0
    )
    replay_steps_per_env: int = option_field(
        10_000,
        "Replay capacity per env in env steps (total capacity x num_envs).",
        minimum=1,
        maximum=SIZE_MAX,
    )
    eval_every: int = option_field(
        2_000_000,
        "Evaluate every this many env steps (0: only at the start and the end).",
        minimum=0,
    )
    eval_episodes: int = option_field(
        128,
        "Episodes on fresh goals per evaluation (deterministic actor).",
        minimum=1,
        maximum=SIZE_MAX,
    )
    eval_episodes_per_task: int = option_field(
        10,
        "Episodes per OGBench task per evaluation (maze envs with fixed tasks; 0: skip).",
        minimum=0,
        maximum=SIZE_MAX,
    )
    log_every: int = option_field(
        500_000, "Log training metrics every this many env steps (also at each eval).", minimum=1
    )
    checkpoint_every: int = option_field(
        10_000_000, "Checkpoint every this many env steps (0: only at the end).", minimum=0
    )
    buffer_in_checkpoint: bool = option_field(
        True, "Store the replay buffer in checkpoints (exact resume; large files)."
    )
    eval_env: str | None = option_field(
        None,
        "Env to evaluate in: one of the same body family as --env, e.g. the paper's "
        "ant-big-maze-eval for ant-big-maze.",
        auto="the training env",
    )
    prefill_steps: int = option_field(
        0,
        "Env steps per env collected with the untrained actor before the first SGD update "
        "(the paper's min_replay_size: 1000); counted in the budget, rounded up to whole unrolls.",
        minimum=0,
        maximum=SIZE_MAX,
    )

    def __post_init__(self) -> None:
        from crlkit.envs.registry import canonical_name, check_same_family

        check_fields(self)
        canonical_name(self.env)  # one-line ValueError naming the unknown env
        if self.eval_env is not None:
            check_same_family(self.env, self.eval_env)
        sgd_steps = self.train_steps * self.updates_per_step
        if sgd_steps > INT32_MAX:
            most = INT32_MAX // self.updates_per_step * self.steps_per_train_step
            raise ValueError(
                f"--steps {self.steps:,} means {sgd_steps:,} SGD updates, more than "
                f"{INT32_MAX:,} ({INT32_WHY}); at most {most:,} env steps with these settings"
            )
        if self.replay_steps_per_env < self.unroll_length:
            raise ValueError(
                f"replay_steps_per_env ({self.replay_steps_per_env}) must be >= unroll_length "
                f"({self.unroll_length}): one unroll must fit in the buffer"
            )

    @property
    def steps_per_train_step(self) -> int:
        """Env steps one training step takes."""
        return self.num_envs * self.unroll_length

    @property
    def prefill_train_steps(self) -> int:
        """Training steps at the start that collect data without SGD updates."""
        return -(-self.prefill_steps // self.unroll_length)

    @property
    def train_steps(self) -> int:
        """Training steps the budget runs (the last one may overshoot `steps`)."""
        return -(-self.steps // self.steps_per_train_step)  # exact for any int


# The bare `crlkit online`: learns to reach goals in the open point-mass arena in a few CPU
# minutes (tests/test_online.py checks >= 0.9 fresh-goal success on this budget).
QUICKSTART = (
    OnlineConfig(
        env="pointmaze-arena",
        steps=307_200,
        num_envs=32,
        unroll_length=50,
        batch_size=256,
        updates_per_step=32,
        replay_steps_per_env=2_000,
        eval_every=51_200,
        eval_episodes=64,
        eval_episodes_per_task=10,
        log_every=12_800,
        checkpoint_every=51_200,
    ),
    LearnerConfig(network=NetworkConfig(width=64, critic_depth=4, actor_depth=4)),
)
PRESETS: dict[str, tuple[OnlineConfig, LearnerConfig]] = {
    "paper": (OnlineConfig(prefill_steps=1000), LearnerConfig()),
    "quickstart": QUICKSTART,
}


def config_dict(online: OnlineConfig, learner: LearnerConfig) -> dict[str, Any]:
    """The run's config.json content."""
    return {"online": to_dict(online), "learner": to_dict(learner)}


def configs_from_dict(data: dict[str, Any]) -> tuple[OnlineConfig, LearnerConfig]:
    """Inverse of `config_dict` (e.g. a run dir's config.json)."""
    return from_dict(OnlineConfig, data["online"]), from_dict(LearnerConfig, data["learner"])
