"""The one in-memory dataset layout: OGBench's compact flat layout + episode bounds + a goal slice.

Every reader (OGBench `.npz`, Minari HDF5, `crlkit collect`) maps into `Dataset`; the offline loop's
goal samplers read from it. Rows are time steps; episodes lie back to back:

```
                 |<------------ episode 0 ------------>|<------- episode 1 ------->|
  row             0     1     2     3     4              5     6     7     8
  observations    s0    s1    s2    s3    s4             s0'   s1'   s2'   s3'
  actions         a0    a1    a2    a3   (a4)            a0'   a1'   a2'  (a3')
  terminals       0     0     0     1     1              0     0     1     1
  valids          1     1     1     1     0              1     1     1     0
  episode_starts  0     0     0     0     0              5     5     5     5
  episode_ends    4     4     4     4     4              8     8     8     8
  goals           observations[:, goal_indices]   (the xy columns for the maze robots)
```

* Row t with `valids[t] == 1` is the transition (observations[t], actions[t], observations[t + 1]).
* An episode's final row has no successor: `valids == 0` and its action (in parentheses) belongs to
  no transition (OGBench stores it anyway; Minari has no place for it, so Minari data carries 0).
* `terminals` follows OGBench's compact loader: 1 on an episode's last valid row and on its final
  row. On disk (OGBench `.npz`) `terminals` is 1 on the final row only; `from_raw`/`to_raw` convert.
* `episode_starts[t]` / `episode_ends[t]`: first and final row (inclusive) of row t's episode, so a
  sampler finds the future of row t inside its episode in O(1).
* `goal_indices`: the observation columns that form a goal (OGBench goals are full observations;
  CRL's psi(g) sees only this slice).
* `extras`: optional per-row arrays carried along for lossless conversion (`qpos`, `qvel`, and
  `desired_goals`: the goal the collecting policy was commanded toward, when known).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

# Keys an OGBench .npz must hold; other keys (qpos, qvel, ...) are optional extras.
REQUIRED_KEYS = ("observations", "actions", "terminals")


class DatasetError(ValueError):
    """Bad dataset input; the message is one line naming the file and the problem."""

    def __init__(self, source: str | os.PathLike, problem: str):
        self.source = str(source)
        self.problem = " ".join(str(problem).split())  # one line, whatever the cause said
        super().__init__(f"{self.source}: {self.problem}")


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """A goal-conditioned dataset in OGBench's compact layout (see the module docstring).

    Attributes:
      observations: [N, obs_dim] float32 (uint8 for pixel observations).
      actions: [N, action_dim] float32.
      terminals: [N] float32, 1 on an episode's last valid row and its final row.
      valids: [N] float32, 0 on an episode's final row (no next observation).
      episode_starts: [N] int32, first row of each row's episode.
      episode_ends: [N] int32, final row (inclusive) of each row's episode.
      goal_indices: observation columns that form a goal.
      extras: optional per-row arrays ([N, ...]): qpos, qvel, desired_goals.
      metadata: name, source, path, env and the like (JSON-serialisable).
    """

    observations: np.ndarray
    actions: np.ndarray
    terminals: np.ndarray
    valids: np.ndarray
    episode_starts: np.ndarray
    episode_ends: np.ndarray
    goal_indices: tuple[int, ...]
    extras: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def num_rows(self) -> int:
        """Rows stored, including each episode's final row."""
        return int(self.observations.shape[0])

    @property
    def num_transitions(self) -> int:
        """Rows that start a valid transition."""
        return int(self.valids.sum())

    @property
    def num_episodes(self) -> int:
        """Complete episodes stored."""
        return int(np.count_nonzero(self.valids == 0))

    @property
    def obs_dim(self) -> int:
        """Observation size (OGBench's observation: the env state without the goal)."""
        return int(self.observations.shape[1])

    @property
    def action_dim(self) -> int:
        """Action size."""
        return int(self.actions.shape[1])

    @property
    def goal_dim(self) -> int:
        """Goal size (len(goal_indices))."""
        return len(self.goal_indices)

    @property
    def name(self) -> str:
        """The dataset's name (metadata['name']), or its path when it has none."""
        return str(self.metadata.get("name", self.metadata.get("path", "dataset")))

    def goals(self) -> np.ndarray:
        """[N, goal_dim] goal slice of every observation."""
        return self.observations[:, list(self.goal_indices)]

    def episode_bounds(self) -> np.ndarray:
        """[E, 2] (first row, final row) of each episode, inclusive."""
        finals = np.flatnonzero(self.valids == 0)
        return np.stack([self.episode_starts[finals], finals], axis=1)

    def episodes(self) -> Iterator[slice]:
        """Row slices of the episodes, in order."""
        for start, final in self.episode_bounds():
            yield slice(int(start), int(final) + 1)

    def raw_terminals(self) -> np.ndarray:
        """[N] bool, OGBench's on-disk terminals: True on each episode's final row only."""
        return self.valids == 0


def from_raw(
    observations: np.ndarray,
    actions: np.ndarray,
    terminals: np.ndarray,
    *,
    goal_indices: Sequence[int],
    source: str | os.PathLike,
    extras: Mapping[str, np.ndarray] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Dataset:
    """Builds a validated `Dataset` from OGBench's on-disk arrays (terminals on final rows only).

    Raises:
      DatasetError: naming `source` and the problem (shape, dtype, values, episode structure).
    """
    observations = _check_matrix(observations, "observations", source, allow_uint8=True)
    actions = _check_matrix(actions, "actions", source, allow_uint8=False)
    n = observations.shape[0]
    final = _check_terminals(terminals, n, source)
    if actions.shape[0] != n:
        raise DatasetError(source, f"actions has {actions.shape[0]} rows, observations has {n}")
    goal_indices = _check_goal_indices(goal_indices, observations.shape[1], source)
    extras = _check_extras(extras or {}, n, source)

    valids = (~final).astype(np.float32)
    # OGBench compact: the last valid row of an episode is terminal too.
    terminals_compact = (final | np.append(final[1:], True)).astype(np.float32)
    starts, ends = _episode_index(final)
    return Dataset(
        observations=observations,
        actions=actions,
        terminals=terminals_compact,
        valids=valids,
        episode_starts=starts,
        episode_ends=ends,
        goal_indices=goal_indices,
        extras=extras,
        metadata=dict(metadata or {}),
    )


def to_raw(ds: Dataset) -> dict[str, np.ndarray]:
    """OGBench's on-disk arrays for `ds`: observations, actions, terminals (bool) and the extras."""
    arrays = {
        "observations": ds.observations,
        "actions": ds.actions,
        "terminals": ds.raw_terminals(),
    }
    arrays.update(ds.extras)
    return arrays


def check_env(ds: Dataset, spec: Any) -> None:
    """Raises DatasetError when `ds` cannot drive the env described by `spec` (an EnvSpec).

    The dataset's observation is the env state (OGBench's observation); the actor and critic are
    sized from the env, so observation, action and goal sizes must all agree.
    """
    source = ds.metadata.get("path", ds.name)
    checks = [
        ("observation", ds.obs_dim, spec.state_dim),
        ("action", ds.action_dim, spec.action_dim),
        ("goal", ds.goal_dim, spec.goal_dim),
    ]
    for what, got, want in checks:
        if got != want:
            raise DatasetError(
                source, f"{what} size {got} does not match env {spec.name!r} ({what} size {want})"
            )


# ---------------------------------------------------------------------------------- validation


def _check_matrix(arr: Any, key: str, source: Any, *, allow_uint8: bool) -> np.ndarray:
    """A 2-D float32 (or uint8 pixel) array with finite values, else DatasetError."""
    arr = np.asarray(arr)
    if arr.ndim != 2:
        raise DatasetError(source, f"{key} must be 2-D [rows, dim], got shape {arr.shape}")
    if arr.shape[1] == 0:
        raise DatasetError(source, f"{key} has zero columns (shape {arr.shape})")
    if allow_uint8 and arr.dtype == np.uint8:
        return arr
    if not np.issubdtype(arr.dtype, np.floating):
        raise DatasetError(source, f"{key} must be a float array, got dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise DatasetError(source, f"{key} has a non-finite value at row {bad}")
    return arr


def _check_terminals(terminals: Any, n: int, source: Any) -> np.ndarray:
    """Final-row flags as bool, checked for shape, values and a complete last episode."""
    terminals = np.asarray(terminals)
    if terminals.ndim != 1 or terminals.shape[0] != n:
        raise DatasetError(source, f"terminals must have shape ({n},), got {terminals.shape}")
    if terminals.dtype != np.bool_:
        if not np.issubdtype(terminals.dtype, np.number):
            raise DatasetError(
                source, f"terminals must be bool or 0/1, got dtype {terminals.dtype}"
            )
        if not np.isin(terminals, (0, 1)).all():
            raise DatasetError(source, "terminals must hold only 0 and 1")
    final = terminals.astype(bool)
    if n == 0 or not final.any():
        raise DatasetError(source, "no complete episode (terminals is never 1)")
    if not final[-1]:
        tail = n - 1 - int(np.flatnonzero(final)[-1])
        raise DatasetError(source, f"ends mid-episode: {tail} rows after the last terminal")
    lone = np.flatnonzero(final & np.insert(final[:-1], 0, True))
    if lone.size:
        raise DatasetError(
            source, f"episode ending at row {lone[0]} has a single row (no transition)"
        )
    return final


def _check_goal_indices(goal_indices: Sequence[int], obs_dim: int, source: Any) -> tuple[int, ...]:
    """Goal columns as a tuple of ints inside [0, obs_dim)."""
    idx = tuple(int(i) for i in goal_indices)
    if not idx or min(idx) < 0 or max(idx) >= obs_dim:
        raise DatasetError(
            source, f"goal_indices {list(idx)} must be non-empty and inside [0, {obs_dim})"
        )
    return idx


def _check_extras(extras: Mapping[str, Any], n: int, source: Any) -> dict[str, np.ndarray]:
    """Per-row extras: arrays with n rows."""
    out = {}
    for key, value in extras.items():
        value = np.asarray(value)
        if value.ndim == 0 or value.shape[0] != n:
            raise DatasetError(source, f"{key} must have {n} rows, got shape {value.shape}")
        out[key] = value
    return out


def _episode_index(final: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row first and final row of the row's episode, from final-row flags."""
    finals = np.flatnonzero(final)
    starts_per_ep = np.concatenate([[0], finals[:-1] + 1])
    lengths = finals - starts_per_ep + 1
    starts = np.repeat(starts_per_ep, lengths).astype(np.int32)
    ends = np.repeat(finals, lengths).astype(np.int32)
    return starts, ends
