"""A run directory's env and trained actor, for rendering.

The one module of `crlkit.render` that imports run-directory helpers (`crlkit.runs`) and the
offline loop's dataset-to-env naming, so a move of those touches only this file.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crlkit.render.outfile import RenderError

RENDER_BACKEND = "native"  # MuJoCo C: a handful of episodes; MJX on a CPU is slow with maze walls


@dataclasses.dataclass(frozen=True)
class RunPolicy:
    """A run's env (built on the native backend) and the actor of one of its checkpoints."""

    run_dir: Path
    env: Any
    nets: Any
    params: Any
    step: int
    regime: str  # "online" or "offline"
    goal_observation: bool  # the actor takes whole goal observations, not the env's goal slice


def load_run_policy(
    run_dir: str | os.PathLike,
    step: int | None = None,
    check_env: Callable[[Any], None] | None = None,
) -> RunPolicy:
    """The env and actor of `run_dir`'s newest (or `step`) checkpoint; RenderError when unusable.

    `check_env(spec)` may refuse the run's env (RenderError) before any checkpoint is read.
    """
    from crlkit.envs import make
    from crlkit.runs.actor import checkpoint_step, load_actor
    from crlkit.runs.checkpoint import RunDirError
    from crlkit.runs.rundir import read_run_config

    run = Path(run_dir)
    try:
        config = read_run_config(run)
    except RunDirError as err:
        raise RenderError(str(err)) from None
    regime, env_name = run_env(config, run)
    try:
        saved = checkpoint_step(run, step)
    except RunDirError as err:
        raise RenderError(str(err)) from None
    env = make(env_name, RENDER_BACKEND)
    if check_env is not None:
        check_env(env.spec)
    whole = _goal_is_observation(config, env.spec)
    # The actor's input sizes: a whole-observation goal is as wide as the state.
    sizes = dataclasses.replace(env.spec, goal_dim=env.spec.state_dim) if whole else env.spec
    try:
        nets, params = load_actor(run, sizes, saved)
    except ValueError as err:
        raise RenderError(str(err)) from None
    return RunPolicy(run, env, nets, params, saved, regime, whole)


def load_run_critic(policy: RunPolicy) -> tuple[Any, Any]:
    """(learner config, critic params) of the checkpoint `policy` was loaded from (value maps);
    RenderError when unusable. The one place render reads a critic from a run directory."""
    from crlkit.runs.actor import load_critic

    spec = policy.env.spec
    sizes = dataclasses.replace(spec, goal_dim=spec.state_dim) if policy.goal_observation else spec
    try:
        return load_critic(policy.run_dir, sizes, policy.step)
    except ValueError as err:
        raise RenderError(str(err)) from None


def _goal_is_observation(config: dict, spec) -> bool:
    """True when an offline run's psi and actor saw whole goal observations (OGBench's goal
    space), as its dataset plan records, where the env's goal is a slice of the observation."""
    plan = (config.get("dataset") or {}).get("plan") or {}
    return plan.get("goal_space") == "observation" and spec.state_dim != spec.goal_dim


def run_env(config: dict, run: Path) -> tuple[str, str]:
    """(regime, crlkit env name) of a run's config.json; RenderError when no crlkit env fits."""
    from crlkit.envs.registry import REGISTRY, canonical_name

    if "online" in config:
        try:
            return "online", canonical_name(str(config["online"].get("env", "")))
        except ValueError as err:
            raise RenderError(f"{run}: {err}") from None
    offline = config.get("offline")
    if not isinstance(offline, dict):
        raise RenderError(f"{run}: config.json has neither an 'online' nor an 'offline' section")
    planned = ((config.get("dataset") or {}).get("plan") or {}).get("env")
    if planned:
        return "offline", str(planned)  # the crlkit env the dataset plan names
    recorded = (config.get("dataset") or {}).get("eval_env")
    if isinstance(recorded, list) and len(recorded) == 2 and recorded[0] == "crlkit":
        return "offline", str(recorded[1])  # the env the offline loop evaluated in
    # Runs made before the loop recorded its evaluation env: the same resolution, from names.
    name = (
        str(offline.get("env") or "")
        or _card_env(str(offline.get("dataset", "")))
        or _file_env(str((config.get("dataset") or {}).get("path", "")))
    )
    if name:
        try:
            return "offline", canonical_name(name)
        except ValueError:
            pass
    env_id = name or _ogbench_env_id(str(offline.get("dataset", "")))
    same = [n for n, entry in REGISTRY.items() if env_id and entry.ogbench_env_id == env_id]
    if not same:
        raise RenderError(
            f"{run}: trained on {offline.get('dataset')!r}, whose env "
            f"{env_id or '(unknown)'!r} is not a crlkit env; render supports "
            "the point/ant/humanoid mazes and open floors (see: crlkit envs)"
        )
    return "offline", same[0]


def _card_env(dataset: str) -> str:
    """The crlkit env named by the dataset's catalog card, or ''."""
    from crlkit.data import catalog

    try:
        card, _ = catalog.find_card(Path(dataset).name.removesuffix(".npz"))
    except ValueError:
        return ""
    return card.env


def _file_env(path: str) -> str:
    """The env an .npz written by `crlkit collect` names in its crlkit metadata, or ''."""
    import json

    import numpy as np

    from crlkit.data.ogbench_io import METADATA_KEY

    if not path.endswith(".npz") or not Path(path).is_file():
        return ""
    try:
        with np.load(path, allow_pickle=False) as npz:  # reads only the key asked for
            meta = json.loads(str(npz[METADATA_KEY])) if METADATA_KEY in npz.files else {}
    except (OSError, ValueError):
        return ""
    return str(meta.get("env") or "") if isinstance(meta, dict) else ""


def _ogbench_env_id(dataset: str) -> str:
    from crlkit.data.catalog import ogbench_env_id

    return ogbench_env_id(dataset)
