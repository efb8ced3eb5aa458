"""On-device trajectory replay buffer: a ring over time with one column per env.

Every leaf of the stored pytree is laid out `[T, E, ...]`: T = capacity // num_envs rows of time
per env, E = num_envs columns. The online loop inserts one chunk of `unroll_length` steps for all
envs at once, so all envs share one write position:

```
  ring row        0    1    2    3    4    5    6    7      T = 8 rows per env, chunks of L = 3
  after 3 chunks  c2   c0   c0   c1   c1   c1   c2   c2     chunk 2 wrapped: rows 6, 7, 0
                       ^ insert_pos (the oldest row once the ring is full)
```

`insert` writes only the chunk's rows (two `lax.dynamic_update_slice` windows of L rows, so a chunk
that wraps past row T - 1 costs the same as one that does not); it never copies or rolls the buffer,
and under `jax.jit(..., donate_argnums=0)` XLA updates the buffer in place.

The buffer also keeps one int32 episode id per stored step: `insert` takes the chunk's `done` flags
and numbers each env's episodes 0, 1, 2, ... so goal relabelling (`crlkit.data.goals`) can find the
future of a step inside its own episode without reading past the newest written row.

All functions are pure and jittable; sizes are static (from array shapes), so no call recompiles
for a new write position or fill level.
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
from jax import lax

from crlkit.data import goals

Pytree = Any


@flax.struct.dataclass
class ReplayState:
    """Ring buffer of trajectories.

    Attributes:
      data: pytree of arrays, each leaf [T, E, ...] (T rows of time per env, E envs).
      episode_id: [T, E] int32, per-env episode number of each stored step.
      next_episode_id: [E] int32, episode number the next inserted step of each env belongs to.
      insert_pos: [] int32, ring row the next chunk starts at.
      size: [] int32, rows written so far (saturates at T).
    """

    data: Pytree
    episode_id: jax.Array
    next_episode_id: jax.Array
    insert_pos: jax.Array
    size: jax.Array

    @property
    def rows_per_env(self) -> int:
        """T: ring rows per env (static)."""
        return self.episode_id.shape[0]

    @property
    def num_envs(self) -> int:
        """E: env columns (static)."""
        return self.episode_id.shape[1]


@flax.struct.dataclass
class ReplaySample:
    """A minibatch drawn by `sample`.

    Attributes:
      transition: pytree like the stored data, leaves [B, ...]: the sampled steps.
      future: pytree like the stored data, leaves [B, ...]: the goal steps (same env, same episode,
        `offset` steps later); slice the goal out of it (e.g. `future.state[:, goal_indices]`).
      offset: [B] int32, goal step minus sampled step (>= 1, or 0 when the sampled step is the last
        stored step of its episode).
      row: [B] int32 ring rows of the sampled steps; goal_row: [B] ring rows of the goals.
      env: [B] int32 env columns of both.
    """

    transition: Pytree
    future: Pytree
    offset: jax.Array
    row: jax.Array
    goal_row: jax.Array
    env: jax.Array


def init(step_example: Pytree, num_envs: int, capacity: int) -> ReplayState:
    """An empty buffer for `capacity` env steps in all (capacity // num_envs per env).

    Args:
      step_example: pytree of arrays (or jax.ShapeDtypeStruct) shaped like ONE step of ONE env,
        e.g. `{"state": [S], "action": [A]}`; only shapes and dtypes are used.
      num_envs: E, parallel envs inserted together.
      capacity: total env steps the ring holds.
    """
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    rows = capacity // num_envs
    if rows < 1:
        raise ValueError(
            f"replay capacity {capacity} holds no step per env with num_envs={num_envs};"
            f" use capacity >= num_envs"
        )
    data = jax.tree.map(lambda x: jnp.zeros((rows, num_envs, *x.shape), x.dtype), step_example)
    return ReplayState(
        data=data,
        episode_id=jnp.zeros((rows, num_envs), jnp.int32),
        next_episode_id=jnp.zeros((num_envs,), jnp.int32),
        insert_pos=jnp.zeros((), jnp.int32),
        size=jnp.zeros((), jnp.int32),
    )


def insert(state: ReplayState, chunk: Pytree, done: jax.Array) -> ReplayState:
    """Append L steps for every env, overwriting the oldest rows once the ring is full.

    Args:
      state: the buffer.
      chunk: pytree like the stored data with leaves [L, E, ...], L <= T (time-major, as
        `lax.scan` over env steps returns it).
      done: [L, E] bool, True where that step ended its episode (the env's next inserted step
        starts a new episode).
    """
    rows, num_envs = state.episode_id.shape
    length = done.shape[0]
    if done.shape != (length, num_envs):
        raise ValueError(
            f"done has shape {done.shape}; expected (L, {num_envs}) for {num_envs} envs"
        )
    if length > rows:
        raise ValueError(
            f"chunk of {length} steps exceeds the {rows} rows per env of this buffer"
            f" (capacity // num_envs); raise the capacity or shorten the unroll"
        )
    _check_chunk(state.data, chunk, length)
    done = done.astype(jnp.int32)
    # Exclusive cumulative sum: a step belongs to the episode counted before its own done flag.
    ids = state.next_episode_id + jnp.cumsum(done, axis=0) - done
    pos = state.insert_pos
    return state.replace(
        data=jax.tree.map(lambda buf, new: _write_ring(buf, new, pos), state.data, chunk),
        episode_id=_write_ring(state.episode_id, ids, pos),
        next_episode_id=state.next_episode_id + jnp.sum(done, axis=0),
        insert_pos=(pos + length) % rows,
        size=jnp.minimum(state.size + length, rows),
    )


def sample(
    state: ReplayState,
    key: jax.Array,
    batch_size: int,
    gamma: float = 0.99,
    at_episode_end: str = "renormalize",
) -> ReplaySample:
    """Uniform steps over all written rows and envs, each with a future goal step of its episode.

    The goal offset is geometric with parameter `gamma` (P(k) proportional to gamma^(k-1), k >= 1)
    and never leaves the step's episode or the written rows; see
    `goals.future_rows_in_ring` for `at_episode_end` ("renormalize" or "clip"). The buffer must
    hold at least one inserted chunk.
    """
    rows = state.rows_per_env
    key_step, key_env, key_goal = jax.random.split(key, 3)
    age = jax.random.randint(key_step, (batch_size,), 0, state.size)
    oldest = (state.insert_pos - state.size) % rows
    row = (oldest + age) % rows
    env = jax.random.randint(key_env, (batch_size,), 0, state.num_envs)
    goal_row, offset = goals.future_rows_in_ring(
        key_goal,
        state.episode_id,
        state.insert_pos,
        state.size,
        row,
        env,
        gamma,
        at_episode_end,
    )
    return ReplaySample(
        transition=gather(state, row, env),
        future=gather(state, goal_row, env),
        offset=offset,
        row=row,
        goal_row=goal_row,
        env=env,
    )


def gather(state: ReplayState, row: jax.Array, env: jax.Array) -> Pytree:
    """Stored steps at (ring row, env) pairs: pytree with leaves [B, ...]."""
    return jax.tree.map(lambda buf: buf[row, env], state.data)


def _write_ring(buffer: jax.Array, chunk: jax.Array, pos: jax.Array) -> jax.Array:
    """Write chunk[0..L) to ring rows pos, pos+1, ... (mod T), touching O(L) rows.

    A wrapping chunk lands in two places (the ring's tail and its head), so two L-row windows are
    written: one ending at or after `pos` (start clamped to T - L) and one at row 0. In each window
    a row takes the chunk element whose ring row it is and keeps its old value otherwise; when the
    chunk does not wrap the second window is rewritten unchanged. Both windows are static-size
    `dynamic_update_slice`s, which XLA performs in place on a donated buffer.
    """
    rows, length = buffer.shape[0], chunk.shape[0]
    for start in (jnp.minimum(pos, rows - length), jnp.zeros_like(pos)):
        ring_rows = start + jnp.arange(length)
        element = (ring_rows - pos) % rows  # index into the chunk; >= L: not written this time
        written = (element < length).reshape((length,) + (1,) * (chunk.ndim - 1))
        new = jnp.take(chunk, jnp.minimum(element, length - 1), axis=0)
        old = lax.dynamic_slice_in_dim(buffer, start, length, axis=0)
        window = jnp.where(written, new.astype(buffer.dtype), old)
        buffer = lax.dynamic_update_slice_in_dim(buffer, window, start, axis=0)
    return buffer


def _check_chunk(data: Pytree, chunk: Pytree, length: int) -> None:
    """Raise a one-line ValueError when the chunk's structure or shapes do not fit the buffer."""
    data_leaves, data_def = jax.tree.flatten(data)
    chunk_leaves, chunk_def = jax.tree.flatten(chunk)
    if data_def != chunk_def:
        raise ValueError(f"chunk structure {chunk_def} differs from the buffer's {data_def}")
    for path, buf, new in zip(_paths(data), data_leaves, chunk_leaves, strict=True):
        expected = (length, *buf.shape[1:])
        if tuple(new.shape) != expected:
            raise ValueError(
                f"chunk leaf {path} has shape {tuple(new.shape)}; expected {expected} (L, E, ...)"
            )


def _paths(tree: Pytree) -> list[str]:
    """Readable key paths of a pytree's leaves, for error messages."""
    return [
        jax.tree_util.keystr(p) or "<root>"
        for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]
    ]
