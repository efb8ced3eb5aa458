"""`crlkit collect`: vectorized rollouts of a policy in a crlkit env, written as an OGBench or
Minari dataset.

Episodes follow OGBench's data generation: every episode stores `episode_length + 1` rows (the
observation before each step and the action taken), the goal logic comes from the style:

* `navigate`: start in any free cell; goal in a maze "vertex" cell (not a straight corridor cell),
  a new one after each success (OGBench's navigate data).
* `stitch`: one goal per episode, a cell `stitch_cells` BFS steps from the start (OGBench's stitch).
* `explore`: a random unit direction every `explore_every` steps (OGBench's explore data).

Policies: `random` (uniform actions), `expert` (OGBench's scripted point-maze controller: head for
the centre of the next cell on a BFS path to the goal, or along the explore direction), or a
`crlkit online` run directory (its latest checkpoint's actor, deterministic, as OGBench's SAC
experts). Gaussian noise of std `noise` is added and actions are clipped to [-1, 1].

Envs run in lockstep (`num_envs` at a time, vmapped, scanned in jitted chunks); rows reach the host
once per chunk. The dataset is written only when every episode is done, atomically (temporaries
renamed into place), so a killed collect leaves no dataset that looks complete.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np

from crlkit import files
from crlkit.collect.config import CollectConfig
from crlkit.collect.maze_graph import MazeGraph
from crlkit.collect.policies import make_policy
from crlkit.collect.rollout import roll_out
from crlkit.data import minari_io, ogbench_io
from crlkit.data.dataset import Dataset, from_raw
from crlkit.envs import make


def collect(cfg: CollectConfig, progress: bool = True) -> dict[str, Any]:
    """Rolls out, writes the dataset, and returns a summary (paths, episodes, rows, steps/s)."""
    out = Path(cfg.out)
    _check_output(cfg, out)
    env = make(cfg.env, backend=cfg.backend).unwrapped
    spec = env.spec
    graph = MazeGraph.build(spec.maze.array) if spec.maze is not None else None
    if cfg.style == "stitch" and graph is None:
        raise ValueError(f"--style stitch needs a maze; env {spec.name!r} has an open floor")
    policy = make_policy(cfg, env, graph)
    length = cfg.episode_length or spec.episode_length
    train_eps = math.ceil(cfg.steps / length)
    val_eps = math.ceil(train_eps * cfg.val_fraction) if cfg.format == "ogbench" else 0
    episodes, env_steps, rate = roll_out(
        cfg, env, policy, graph, length, train_eps + val_eps, progress
    )
    meta = _metadata(cfg, spec, length, out)
    train = _to_dataset(episodes[:train_eps], spec, {**meta, "split": "train"})
    val = _to_dataset(episodes[train_eps:], spec, {**meta, "split": "val"}) if val_eps else None
    if cfg.format == "ogbench":
        paths = ogbench_io.write_npz(train, val, out)
    else:
        paths = [
            minari_io.write_minari(
                train,
                cfg.out,
                env_name=spec.name,
                ogbench_env_id=spec.ogbench_env_id,
                overwrite=cfg.overwrite,
            )
        ]
    return {
        "paths": [str(p) for p in paths],
        "episodes": train_eps + val_eps,
        "rows": train.num_rows + (val.num_rows if val else 0),
        "env_steps": env_steps,
        "steps_per_second": rate,
        "backend": spec.backend,
    }


def _check_output(cfg: CollectConfig, out: Path) -> None:
    """Refuses to clobber an existing dataset unless --overwrite, and an output folder that
    cannot be written (checked before any work, so a rollout is never wasted)."""
    if cfg.format == "ogbench":
        path = out
        existing = [p for p in (out, ogbench_io.val_path(out)) if p.exists()]
    else:
        path, _ = minari_io.resolve_out(cfg.out)
        existing = [path] if path.exists() else []
    if existing and not cfg.overwrite:
        raise ValueError(f"{existing[0]} already exists; pass --overwrite to replace it")
    try:
        files.probe_writable_dir(path.parent)
    except ValueError as err:
        raise ValueError(f"--out {cfg.out}: {err}") from None


def _to_dataset(episodes: list[dict[str, np.ndarray]], spec, metadata: dict) -> Dataset:
    """Stacks host episodes into the layout."""
    cat = {k: np.concatenate([ep[k] for ep in episodes]) for k in episodes[0]}
    terminals = np.concatenate([np.arange(len(ep["obs"])) == len(ep["obs"]) - 1 for ep in episodes])
    extras = {"qpos": cat["qpos"], "qvel": cat["qvel"]}
    if metadata["style"] != "explore":
        extras["desired_goals"] = cat["goal"]
    return from_raw(
        cat["obs"],
        cat["action"],
        terminals,
        goal_indices=spec.goal_indices,
        source=metadata["name"],
        extras={k: v.astype(np.float32) for k, v in extras.items()},
        metadata=metadata,
    )


def _metadata(cfg: CollectConfig, spec, length: int, out: Path) -> dict[str, Any]:
    """What the dataset records about how it was made."""
    import crlkit

    name = out.name[: -len(".npz")] if cfg.format == "ogbench" else out.name
    return {
        "name": name,
        "env": spec.name,
        "ogbench_env_id": spec.ogbench_env_id,
        "backend": spec.backend,
        "policy": cfg.policy,
        "style": cfg.style,
        "noise": cfg.noise,
        "seed": cfg.seed,
        "episode_length": length,
        "crlkit_version": crlkit.__version__,
        "collect": command_line(cfg),
    }


def command_line(cfg: CollectConfig) -> str:
    """The `crlkit collect` command that reproduces `cfg` (the main flags always, others if set)."""
    always = (
        "env",
        "policy",
        "style",
        "steps",
        "episode_length",
        "noise",
        "num_envs",
        "seed",
        "format",
        "out",
    )
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    names = [*always, *(n for n in fields if n not in always and n != "overwrite")]
    parts = ["crlkit collect"]
    for name in names:
        value = getattr(cfg, name)
        if (
            name in always
            and not (name == "episode_length" and value == 0)
            or (value != fields[name].default)
        ):
            parts.append(f"--{name.replace('_', '-')} {value}")
    return " ".join(parts)
