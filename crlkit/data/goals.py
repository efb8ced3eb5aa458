"""Goal relabelling: which stored step serves as the goal for a sampled step.

Two layouts, one set of rules:

* Online, the replay ring (`crlkit.data.replay`): rows of time x env columns, per-step episode
  ids. `future_rows_in_ring` draws a future step of the same env and episode.
* Offline, the flat dataset (`crlkit.data.dataset`, OGBench compact): rows back to back with
  `episode_ends[i]` = the final row (inclusive) of row i's episode and `valid_rows` = the rows
  that start a transition. `geometric_future_rows`, `uniform_future_rows`, `random_rows` and their
  mixture `mixed_goal_rows` (OGBench's value_p_* / actor_p_* settings, as `GoalMix`) return rows.

Every sampler works on plain integer arrays and returns row indices (never observations), costs
O(batch) memory, and has a NumPy twin (`*_np`, taking a `numpy.random.Generator`) that draws from
the same distribution; the host-side offline sampler uses the twins.

Geometric offsets: k >= 1 with P(k) proportional to gamma^(k-1) (the discounted state occupancy
the contrastive critic estimates). A step has m = (last stored step of its episode) - (its step)
future steps; `at_episode_end` says what happens to offsets beyond m:

* "clip" (OGBench): k = min(k, m); the tail mass gamma^m lands on the episode's last stored step.
* "renormalize" (the paper's reference, JaxGCRL): P(k) = gamma^(k-1) (1 - gamma) / (1 - gamma^m)
  on 1..m, the geometric law conditioned on staying inside the stored episode.

A step with m = 0 (its episode's last stored step: the final row of a dataset episode, or the
newest ring row / the step whose transition ended the episode) gets itself as the goal, offset 0.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

AT_EPISODE_END = ("clip", "renormalize")


@dataclasses.dataclass(frozen=True)
class GoalMix:
    """Where a batch's goals come from; OGBench's `{value,actor}_p_*goal` and `*_geom_sample`.

    Attributes:
      p_current: probability the goal is the sampled step itself.
      p_trajectory: probability the goal is a future step of the same episode.
      p_random: probability the goal is a uniformly random valid row of the dataset.
      geometric: trajectory goals at a geometric offset (True) or uniform over the episode's
        future (False).
    """

    p_current: float = 0.0
    p_trajectory: float = 1.0
    p_random: float = 0.0
    geometric: bool = True

    def __post_init__(self):
        probs = (self.p_current, self.p_trajectory, self.p_random)
        if any(not 0.0 <= p <= 1.0 for p in probs) or not math.isclose(
            sum(probs), 1.0, abs_tol=1e-6
        ):
            raise ValueError(
                f"goal mix probabilities (current, trajectory, random) = {probs} must lie in"
                f" [0, 1] and sum to 1"
            )


# OGBench's CRL defaults: critic goals geometric in the trajectory, actor goals uniform in it;
# on stitch/explore data OGBench mixes in random goals for the actor, half and half.
CRITIC_GOALS = GoalMix(p_current=0.0, p_trajectory=1.0, p_random=0.0, geometric=True)
ACTOR_GOALS = GoalMix(p_current=0.0, p_trajectory=1.0, p_random=0.0, geometric=False)
ACTOR_GOALS_STITCH = GoalMix(p_current=0.0, p_trajectory=0.5, p_random=0.5, geometric=False)
# OGBench's share of uniformly random actor goals by data type (stitch, explore; else 0).
ACTOR_P_RANDOM = {"stitch": ACTOR_GOALS_STITCH.p_random, "explore": 1.0}


class OfflineRows(NamedTuple):
    """Row indices of one offline minibatch: the transitions and their critic and actor goals."""

    rows: jax.Array | np.ndarray
    critic_goal_rows: jax.Array | np.ndarray
    actor_goal_rows: jax.Array | np.ndarray


# ---------------------------------------------------------------------------------------------
# Offsets (shared by both layouts)


def geometric_offsets(
    key: jax.Array, max_offset: jax.Array, gamma: float, at_episode_end: str = "clip"
) -> jax.Array:
    """Geometric offsets k >= 1 (P(k) ~ gamma^(k-1)) capped at max_offset [B]; 0 where it is 0."""
    _check_gamma(gamma, at_episode_end)
    m = max_offset.astype(jnp.int32)
    u = jax.random.uniform(key, m.shape, jnp.float32)
    log_gamma = jnp.float32(math.log(gamma))
    if at_episode_end == "clip":
        # Inverse CDF of the untruncated geometric; 1 - u lies in (0, 1].
        k = 1.0 + jnp.floor(jnp.log1p(-u) / log_gamma)
    else:
        # Inverse CDF of the geometric conditioned on k <= m: F(k) = (1 - g^k) / (1 - g^m).
        tail = -jnp.expm1(m.astype(jnp.float32) * log_gamma)
        k = 1.0 + jnp.floor(jnp.log1p(-u * tail) / log_gamma)
    k = jnp.minimum(k, m.astype(jnp.float32)).astype(jnp.int32)
    return jnp.where(m > 0, jnp.maximum(k, 1), 0)


def geometric_offsets_np(
    rng: np.random.Generator, max_offset: np.ndarray, gamma: float, at_episode_end: str = "clip"
) -> np.ndarray:
    """NumPy twin of `geometric_offsets`."""
    _check_gamma(gamma, at_episode_end)
    m = np.asarray(max_offset, np.int64)
    if at_episode_end == "clip":
        k = rng.geometric(1.0 - gamma, size=m.shape)
    else:
        u = rng.random(m.shape)
        tail = -np.expm1(m * math.log(gamma))
        k = 1 + np.floor(np.log1p(-u * tail) / math.log(gamma)).astype(np.int64)
    return np.where(m > 0, np.clip(k, 1, np.maximum(m, 1)), 0)


def uniform_offsets(key: jax.Array, max_offset: jax.Array) -> jax.Array:
    """Offsets uniform on 1..max_offset [B]; 0 where max_offset is 0."""
    m = max_offset.astype(jnp.int32)
    u = jax.random.uniform(key, m.shape, jnp.float32)
    k = 1 + jnp.floor(u * m.astype(jnp.float32)).astype(jnp.int32)
    return jnp.clip(k, jnp.minimum(m, 1), m)


def uniform_offsets_np(rng: np.random.Generator, max_offset: np.ndarray) -> np.ndarray:
    """NumPy twin of `uniform_offsets`."""
    m = np.asarray(max_offset, np.int64)
    k = rng.integers(1, np.maximum(m, 1) + 1)
    return np.where(m > 0, k, 0)


# ---------------------------------------------------------------------------------------------
# Online: the replay ring [T, E]


def future_rows_in_ring(
    key: jax.Array,
    episode_id: jax.Array,
    insert_pos: jax.Array,
    size: jax.Array,
    row: jax.Array,
    env: jax.Array,
    gamma: float = 0.99,
    at_episode_end: str = "renormalize",
) -> tuple[jax.Array, jax.Array]:
    """Goal rows for sampled (ring row, env) pairs: a geometric future step of the same episode.

    Args:
      key: PRNG key.
      episode_id: [T, E] int32 per-step episode numbers (non-decreasing in time per env).
      insert_pos: [] ring row the next write goes to (one past the newest row).
      size: [] rows written (<= T); rows outside the newest `size` are never read.
      row, env: [B] int32, the sampled steps (must lie within the written rows).
      gamma: geometric parameter in (0, 1).
      at_episode_end: "renormalize" or "clip" (module docstring).

    Returns:
      (goal_row [B] int32 ring rows in the same env column, offset [B] int32 >= 0 steps ahead).
    """
    rows = episode_id.shape[0]
    oldest = (insert_pos - size) % rows
    age = (row - oldest) % rows  # 0 = oldest written step, size - 1 = newest
    end_age = _episode_end_age(episode_id, oldest, size, age, env)
    offset = geometric_offsets(key, end_age - age, gamma, at_episode_end)
    return (oldest + age + offset) % rows, offset


def _episode_end_age(
    episode_id: jax.Array, oldest: jax.Array, size: jax.Array, age: jax.Array, env: jax.Array
) -> jax.Array:
    """Age of the last written step of each sample's episode, by binary search (O(B log T)).

    Along a column, ages age..size-1 first hold the sample's episode and then only later ones
    (ids never decrease), so "same episode" is a prefix and bisection finds its end.
    """
    rows = episode_id.shape[0]
    own = episode_id[(oldest + age) % rows, env]

    def halve(_, bounds):
        lo, hi = bounds  # invariant: lo is in the episode, its end lies in [lo, hi]
        mid = (lo + hi + 1) // 2
        same = episode_id[(oldest + mid) % rows, env] == own
        return jnp.where(same, mid, lo), jnp.where(same, hi, mid - 1)

    hi = jnp.broadcast_to(size - 1, age.shape).astype(age.dtype)
    lo, _ = lax.fori_loop(0, max(1, rows.bit_length()), halve, (age, hi))
    return lo


def future_rows_in_ring_np(
    rng: np.random.Generator,
    episode_id: np.ndarray,
    insert_pos: int,
    size: int,
    row: np.ndarray,
    env: np.ndarray,
    gamma: float = 0.99,
    at_episode_end: str = "renormalize",
) -> tuple[np.ndarray, np.ndarray]:
    """NumPy twin of `future_rows_in_ring` (finds episode ends with one sorted search)."""
    episode_id = np.asarray(episode_id, np.int64)
    rows, num_envs = episode_id.shape
    oldest = (int(insert_pos) - int(size)) % rows
    ids = episode_id[(oldest + np.arange(size)) % rows]  # [size, E], oldest first
    # Env-major keys env * span + id are sorted (ids never decrease along a column), so the last
    # step of an episode is where its key's run ends.
    span = int(ids.max() - ids.min()) + 1
    keys = (np.arange(num_envs)[:, None] * span + (ids.T - ids.min())).ravel()
    age = (np.asarray(row) - oldest) % rows
    own = env * span + ids[age, env] - ids.min()
    end_age = np.searchsorted(keys, own, side="right") - 1 - env * size
    offset = geometric_offsets_np(rng, end_age - age, gamma, at_episode_end)
    return (oldest + age + offset) % rows, offset


# ---------------------------------------------------------------------------------------------
# Offline: the flat dataset [N]


def geometric_future_rows(
    key: jax.Array,
    rows: jax.Array,
    episode_ends: jax.Array,
    gamma: float = 0.99,
    at_episode_end: str = "clip",
) -> jax.Array:
    """Rows a geometric number of steps after `rows` [B], inside their episodes (OGBench critic)."""
    m = episode_ends[rows] - rows
    return rows + geometric_offsets(key, m, gamma, at_episode_end)


def geometric_future_rows_np(
    rng: np.random.Generator,
    rows: np.ndarray,
    episode_ends: np.ndarray,
    gamma: float = 0.99,
    at_episode_end: str = "clip",
) -> np.ndarray:
    """NumPy twin of `geometric_future_rows`."""
    m = episode_ends[rows] - rows
    return rows + geometric_offsets_np(rng, m, gamma, at_episode_end)


def uniform_future_rows(key: jax.Array, rows: jax.Array, episode_ends: jax.Array) -> jax.Array:
    """Rows uniform over row+1 .. episode end [B] (OGBench actor goals); final rows map to self."""
    return rows + uniform_offsets(key, episode_ends[rows] - rows)


def uniform_future_rows_np(
    rng: np.random.Generator, rows: np.ndarray, episode_ends: np.ndarray
) -> np.ndarray:
    """NumPy twin of `uniform_future_rows`."""
    return rows + uniform_offsets_np(rng, episode_ends[rows] - rows)


def random_rows(key: jax.Array, valid_rows: jax.Array, batch_size: int) -> jax.Array:
    """Rows drawn uniformly (with replacement) from `valid_rows` [M]: [batch_size]."""
    return valid_rows[jax.random.randint(key, (batch_size,), 0, valid_rows.shape[0])]


def random_rows_np(rng: np.random.Generator, valid_rows: np.ndarray, batch_size: int) -> np.ndarray:
    """NumPy twin of `random_rows`."""
    return valid_rows[rng.integers(0, len(valid_rows), size=batch_size)]


def mixed_goal_rows(
    key: jax.Array,
    rows: jax.Array,
    episode_ends: jax.Array,
    valid_rows: jax.Array,
    mix: GoalMix,
    gamma: float = 0.99,
    at_episode_end: str = "clip",
) -> jax.Array:
    """Goal rows for `rows` [B] drawn from the mixture `mix` (current / trajectory / random)."""
    key_traj, key_random, key_pick = jax.random.split(key, 3)
    if mix.geometric:
        traj = geometric_future_rows(key_traj, rows, episode_ends, gamma, at_episode_end)
    else:
        traj = uniform_future_rows(key_traj, rows, episode_ends)
    rand = random_rows(key_random, valid_rows, rows.shape[0])
    u = jax.random.uniform(key_pick, rows.shape)
    return jnp.where(
        u < mix.p_current, rows, jnp.where(u < mix.p_current + mix.p_trajectory, traj, rand)
    )


def mixed_goal_rows_np(
    rng: np.random.Generator,
    rows: np.ndarray,
    episode_ends: np.ndarray,
    valid_rows: np.ndarray,
    mix: GoalMix,
    gamma: float = 0.99,
    at_episode_end: str = "clip",
) -> np.ndarray:
    """NumPy twin of `mixed_goal_rows`."""
    if mix.geometric:
        traj = geometric_future_rows_np(rng, rows, episode_ends, gamma, at_episode_end)
    else:
        traj = uniform_future_rows_np(rng, rows, episode_ends)
    rand = random_rows_np(rng, valid_rows, len(rows))
    u = rng.random(len(rows))
    return np.where(
        u < mix.p_current, rows, np.where(u < mix.p_current + mix.p_trajectory, traj, rand)
    )


def sample_offline_rows(
    key: jax.Array,
    valid_rows: jax.Array,
    episode_ends: jax.Array,
    batch_size: int,
    critic_mix: GoalMix = CRITIC_GOALS,
    actor_mix: GoalMix = ACTOR_GOALS,
    gamma: float = 0.99,
) -> OfflineRows:
    """One offline minibatch of row indices: uniform valid rows plus critic and actor goal rows."""
    key_rows, key_critic, key_actor = jax.random.split(key, 3)
    rows = random_rows(key_rows, valid_rows, batch_size)
    return OfflineRows(
        rows=rows,
        critic_goal_rows=mixed_goal_rows(
            key_critic, rows, episode_ends, valid_rows, critic_mix, gamma
        ),
        actor_goal_rows=mixed_goal_rows(
            key_actor, rows, episode_ends, valid_rows, actor_mix, gamma
        ),
    )


def sample_offline_rows_np(
    rng: np.random.Generator,
    valid_rows: np.ndarray,
    episode_ends: np.ndarray,
    batch_size: int,
    critic_mix: GoalMix = CRITIC_GOALS,
    actor_mix: GoalMix = ACTOR_GOALS,
    gamma: float = 0.99,
) -> OfflineRows:
    """NumPy twin of `sample_offline_rows` (the host-side sampler for datasets off device)."""
    rows = random_rows_np(rng, valid_rows, batch_size)
    return OfflineRows(
        rows=rows,
        critic_goal_rows=mixed_goal_rows_np(rng, rows, episode_ends, valid_rows, critic_mix, gamma),
        actor_goal_rows=mixed_goal_rows_np(rng, rows, episode_ends, valid_rows, actor_mix, gamma),
    )


def _check_gamma(gamma: float, at_episode_end: str) -> None:
    """Raise a one-line ValueError for a gamma outside (0, 1) or an unknown end rule."""
    if at_episode_end not in AT_EPISODE_END:
        raise ValueError(f"at_episode_end={at_episode_end!r}; valid: {', '.join(AT_EPISODE_END)}")
    if not 0.0 < float(gamma) < 1.0:
        raise ValueError(f"goal discount gamma={gamma} must lie strictly between 0 and 1")
