"""What `crlkit collect` rolls out and where it writes: `CollectConfig` (every field a flag)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from crlkit.checks import INT32_MAX, check_fields
from crlkit.config import option_field
from crlkit.envs.backends import BACKEND_CHOICES

POLICIES = ("random", "expert")  # or a run directory
STYLES = ("navigate", "stitch", "explore")
FORMATS = ("ogbench", "minari")
ROWS_WHY = "datasets index rows in int32"


@dataclasses.dataclass(frozen=True)
class CollectConfig:
    """What `crlkit collect` rolls out and where it writes (every field is a CLI flag)."""

    env: str | None = option_field(None, "Env to collect in (see: crlkit envs). Required.")
    policy: str = option_field(
        "random",
        "random, expert (scripted BFS controller of point mazes; push / grasp-carry-release "
        "controller of the arm tasks) or a `crlkit online` run directory whose latest "
        "checkpoint's actor acts (ant/humanoid experts).",
    )
    style: str = option_field(
        "navigate",
        "navigate: a new goal after each success; stitch: one goal a few cells away; "
        "explore: a random direction every few steps.",
        STYLES,
    )
    steps: int = option_field(
        100_000,
        "Transitions to collect in the train split (rounded up to whole episodes).",
        minimum=1,
        maximum=INT32_MAX,
        maximum_why=ROWS_WHY,
    )
    episode_length: int | None = option_field(
        None,
        "Transitions per episode (each stores one more row).",
        auto="the env's episode length",
        minimum=1,
        maximum=INT32_MAX,
        maximum_why=ROWS_WHY,
    )
    noise: float = option_field(
        0.2, "Std of the Gaussian noise added to every action (then clipped).", minimum=0.0
    )
    val_fraction: float = option_field(
        0.1,
        "Extra val episodes, as a fraction of the train episodes (ogbench format only).",
        minimum=0.0,
        below=1.0,
    )
    format: str = option_field(
        "ogbench", "ogbench: NAME.npz + NAME-val.npz; minari: a Minari dataset.", FORMATS
    )
    out: str | None = option_field(
        None,
        "Output: NAME.npz (ogbench), or a directory whose name is the Minari id (name-v0), or "
        "minari:<id> (into Minari's root). Required.",
    )
    backend: str = option_field("auto", "Physics backend.", BACKEND_CHOICES)
    num_envs: int = option_field(64, "Envs rolled out in lockstep.", minimum=1, maximum=INT32_MAX)
    seed: int = option_field(
        0,
        "Seed of every random draw (starts, goals, noise, policy).",
        minimum=0,
        maximum=2**32 - 1,
        maximum_why="a 32-bit seed",
    )
    explore_every: int = option_field(
        10, "explore: steps between new random directions.", minimum=1
    )
    stitch_cells: int = option_field(
        4, "stitch: BFS distance in cells from the start to the goal.", minimum=1
    )
    overwrite: bool = option_field(False, "Replace an existing output (otherwise it is an error).")

    def __post_init__(self):
        check_fields(self)
        given = (("--env", self.env), ("--out", self.out))
        missing = [flag for flag, value in given if value is None]
        if missing:  # all at once, with a command that works
            verb = "is" if len(missing) == 1 else "are"
            raise ValueError(
                f"{' and '.join(missing)} {verb} required, e.g. crlkit collect --env "
                "pointmaze-medium --policy expert --steps 20000 --out pointmaze-medium.npz "
                "(envs: crlkit envs; --out: NAME.npz, a Minari directory or minari:<id>)"
            )
        if self.format == "ogbench" and not self.out.endswith(".npz"):
            raise ValueError(f"--out {self.out!r} must end in .npz for --format ogbench")
        if self.policy not in POLICIES and not Path(self.policy).is_dir():
            raise ValueError(
                f"--policy {self.policy!r} is neither {' nor '.join(POLICIES)} nor a run directory"
            )
