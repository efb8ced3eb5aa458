"""What `crlkit collect` rolls out and where it writes: `CollectConfig` (every field a flag)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from crlkit.config import option_field

POLICIES = ("random", "expert")  # or a run directory
STYLES = ("navigate", "stitch", "explore")
FORMATS = ("ogbench", "minari")


@dataclasses.dataclass(frozen=True)
class CollectConfig:
    """What `crlkit collect` rolls out and where it writes (every field is a CLI flag)."""

    env: str = option_field("", "Env to collect in (see: crlkit envs). Required.")
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
        100_000, "Transitions to collect in the train split (rounded up to whole episodes)."
    )
    episode_length: int = option_field(
        0, "Transitions per episode (each stores one more row); 0: the env's episode length."
    )
    noise: float = option_field(
        0.2, "Std of the Gaussian noise added to every action (then clipped)."
    )
    val_fraction: float = option_field(
        0.1, "Extra val episodes, as a fraction of the train episodes (ogbench format only)."
    )
    format: str = option_field(
        "ogbench", "ogbench: NAME.npz + NAME-val.npz; minari: a Minari dataset.", FORMATS
    )
    out: str = option_field(
        "",
        "Output: NAME.npz (ogbench), or a directory whose name is the Minari id (name-v0), or "
        "minari:<id> (into Minari's root). Required.",
    )
    backend: str = option_field("auto", "Physics backend: auto, native, mjx or warp.")
    num_envs: int = option_field(64, "Envs rolled out in lockstep.")
    seed: int = option_field(0, "Seed of every random draw (starts, goals, noise, policy).")
    explore_every: int = option_field(10, "explore: steps between new random directions.")
    stitch_cells: int = option_field(4, "stitch: BFS distance in cells from the start to the goal.")
    overwrite: bool = option_field(False, "Replace an existing output (otherwise it is an error).")

    def __post_init__(self):
        if not self.env:
            raise ValueError("--env is required (see: crlkit envs)")
        if not self.out:
            raise ValueError("--out is required (NAME.npz, a Minari directory or minari:<id>)")
        if self.style not in STYLES:
            raise ValueError(f"unknown style {self.style!r}; valid: {', '.join(STYLES)}")
        if self.format not in FORMATS:
            raise ValueError(f"unknown format {self.format!r}; valid: {', '.join(FORMATS)}")
        if self.format == "ogbench" and not self.out.endswith(".npz"):
            raise ValueError(f"--out {self.out!r} must end in .npz for --format ogbench")
        if self.policy not in POLICIES and not Path(self.policy).is_dir():
            raise ValueError(
                f"--policy {self.policy!r} is neither {' nor '.join(POLICIES)} nor a run directory"
            )
        for name in ("steps", "num_envs", "explore_every", "stitch_cells"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}"
                )
        if self.episode_length < 0 or self.noise < 0 or not 0 <= self.val_fraction < 1:
            raise ValueError(
                "--episode-length and --noise must be >= 0 and --val-fraction in [0, 1), got "
                f"{self.episode_length}, {self.noise}, {self.val_fraction}"
            )
