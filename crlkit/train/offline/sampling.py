"""Minibatches of the offline loop: the dataset's sampling arrays and OGBench-style goals.

Minibatches are sampled on device from the whole dataset when it fits (`sampler="device"`), or
drawn on the host with the NumPy twins of the same goal samplers (`sampler="host"`).
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import numpy as np

from crlkit import learner
from crlkit.data import goals
from crlkit.data.dataset import Dataset
from crlkit.train.offline.config import OfflineConfig


@flax.struct.dataclass
class DeviceData:
    """The arrays minibatches are gathered from (on device, or on the host for `sampler=host`)."""

    observations: Any  # [N, S]
    actions: Any  # [N, A]
    goals: Any  # [N, G]
    # [N] last goal row of each row's episode: its last valid row, as OGBench's final_state_idxs
    # (its compact terminals mark that row), so goals never land on the final, action-less row.
    episode_ends: Any
    valid_rows: Any  # [M] rows that start a transition


def dataset_arrays(ds: Dataset) -> DeviceData:
    """The dataset's sampling arrays as NumPy (float32 observations, int32 indices)."""
    return DeviceData(
        observations=np.asarray(ds.observations, np.float32),
        actions=np.asarray(ds.actions, np.float32),
        goals=np.asarray(ds.goals(), np.float32),
        episode_ends=np.asarray(ds.episode_ends - 1, np.int32),
        valid_rows=np.flatnonzero(ds.valids > 0).astype(np.int32),
    )


def data_nbytes(data: DeviceData) -> int:
    """Bytes the sampling arrays take."""
    return sum(int(np.asarray(x).nbytes) for x in jax.tree.leaves(data))


def choose_sampler(cfg: OfflineConfig, data: DeviceData) -> str:
    """'device' or 'host': auto puts the dataset on device when it is under --device-data-gb."""
    if cfg.sampler != "auto":
        return cfg.sampler
    return "device" if data_nbytes(data) <= cfg.device_data_gb * 1e9 else "host"


def gather_batch(data: DeviceData, rows: goals.OfflineRows) -> learner.Batch:
    """Minibatch arrays for sampled rows (works on jax and NumPy arrays alike)."""
    return learner.Batch(
        state=data.observations[rows.rows],
        action=data.actions[rows.rows],
        goal=data.goals[rows.critic_goal_rows],
        actor_goal=data.goals[rows.actor_goal_rows],
    )


def sample_batch(cfg: OfflineConfig, data: DeviceData, key: jax.Array) -> learner.Batch:
    """One minibatch drawn on device (OGBench-style critic and actor goals)."""
    critic, actor = cfg.critic_goals(), cfg.actor_goals()
    rows = goals.sample_offline_rows(
        key, data.valid_rows, data.episode_ends, cfg.batch_size, critic, actor, cfg.discount
    )
    return gather_batch(data, rows)


def sample_host_block(
    cfg: OfflineConfig, data: DeviceData, rng: np.random.Generator, count: int
) -> learner.Batch:
    """`count` minibatches drawn on the host, stacked: leaves [count, batch, ...]."""
    critic, actor = cfg.critic_goals(), cfg.actor_goals()
    rows = goals.sample_offline_rows_np(
        rng, data.valid_rows, data.episode_ends, count * cfg.batch_size, critic, actor, cfg.discount
    )
    batch = gather_batch(data, rows)
    return jax.tree.map(lambda x: x.reshape(count, cfg.batch_size, *x.shape[1:]), batch)
