"""A trained actor (or critic) from a run directory: networks and parameters of a checkpoint's
`CRLState`.

Used by `crlkit collect` (a run as the data policy) and `crlkit render` (a run's behaviour; its
critic for value maps). Only the asked-for part's parameters are read (a partial restore of the
state item onto this process's first device): the replay buffer, the other networks and the
optimizer states stay on disk, and a checkpoint of any device layout loads.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from crlkit import learner
from crlkit.config import LearnerConfig, from_dict
from crlkit.runs.checkpoint import Checkpoints, RunDirError, find_checkpoint
from crlkit.runs.rundir import CHECKPOINT_DIR, read_run_config

ACTOR_PARAMS = ".actor.params"


def checkpoint_step(run_dir: str | os.PathLike, step: int | None = None) -> int:
    """The step of a run's newest checkpoint, or `step` when it was saved.

    Raises RunDirError (one line) when the run has no (such) checkpoint.
    """
    return find_checkpoint(Path(run_dir) / CHECKPOINT_DIR, step)[0]


def load_actor(
    run_dir: str | os.PathLike, spec: Any, step: int | None = None
) -> tuple[learner.Networks, Any]:
    """(networks, actor params) of a run's newest (or `step`) checkpoint, checked against `spec`.

    The run's `config.json` holds the learner config under `learner`; the checkpoint holds a
    `CRLState` somewhere in its tree: its `.actor.params` leaves are found by path suffix, so a
    loop may store the learner state under any key. `spec` gives the env sizes (an EnvSpec).

    Raises:
      ValueError: one line naming the run and the problem (no config, no checkpoint, wrong env).
    """
    _, nets, params = _load_part(run_dir, spec, step, "actor")
    return nets, params


def load_critic(
    run_dir: str | os.PathLike, spec: Any, step: int | None = None
) -> tuple[LearnerConfig, Any]:
    """(learner config, critic params {"phi", "psi"}) of a checkpoint, as `load_actor` finds
    the actor's (the critic's energy and ensemble size are in the config)."""
    cfg, _, params = _load_part(run_dir, spec, step, "critic")
    return cfg, params


def _load_part(
    run_dir: str | os.PathLike, spec: Any, step: int | None, part: str
) -> tuple[LearnerConfig, learner.Networks, Any]:
    marker = f".{part}.params"
    try:
        config = read_run_config(run_dir)
        learner_cfg = from_dict(LearnerConfig, config.get("learner", {}))
        ckpts = Checkpoints(Path(run_dir) / CHECKPOINT_DIR)
        try:
            saved = checkpoint_step(run_dir, step)
            stored = ckpts.load_leaves(saved, lambda path: marker in path)
        finally:
            ckpts.close()
    except RunDirError as err:
        raise ValueError(str(err)) from None
    dims = learner.Dims(spec.state_dim, spec.goal_dim, spec.action_dim)
    nets = learner.make_networks(learner_cfg, dims)
    template = jax.eval_shape(
        lambda k: getattr(learner.init(nets, learner_cfg, dims, k), part).params,
        jax.random.PRNGKey(0),
    )
    flat, treedef = jax.tree_util.tree_flatten_with_path(template)
    leaves = [_leaf(stored, part, key_path, like, run_dir, spec) for key_path, like in flat]
    return learner_cfg, nets, jax.tree_util.tree_unflatten(treedef, leaves)


def _leaf(stored: dict, part: str, key_path: Any, like: Any, run_dir: Any, spec: Any) -> jax.Array:
    suffix = f".{part}.params" + jax.tree_util.keystr(key_path)
    hits = [name for name in stored if name.endswith(suffix)]
    if len(hits) != 1:
        raise ValueError(f"{run_dir}: holds no {part} parameter {suffix} (not a CRL checkpoint?)")
    value = stored[hits[0]]
    if value.shape != like.shape:
        raise ValueError(
            f"{run_dir}: {part} parameter {suffix} has shape {value.shape}, env {spec.name!r} "
            f"needs {like.shape} (was the run trained on another env?)"
        )
    return jnp.asarray(value, like.dtype)
