"""Where an episode starts and where its goal is: maze cells or an open floor.

Samplers are static (hashable) and pure: `sample(key) -> (start_xy, goal_xy)`, each [2] float32.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from crlkit.envs.maze import MazeInfo


@dataclasses.dataclass(frozen=True)
class MazeTasks:
    """Start drawn among the maze's start cells, goal among its goal cells, each with cell noise.

    OGBench layouts: both among all free cells with +-unit/4 noise (as ogbench's navigate data and
    its reset's add_noise); the paper's mazes: start at R, goal uniform among the G cells.
    """

    maze: MazeInfo

    def _noisy_cell_xy(self, key: jax.Array, cell: jax.Array, noise: float) -> jax.Array:
        return self.maze.cell_to_xy(cell) + jax.random.uniform(
            key, (2,), minval=-noise, maxval=noise
        )

    def sample(self, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(start_xy, goal_xy) for a fresh episode."""
        k_start, k_goal, n_start, n_goal = jax.random.split(key, 4)
        starts = jnp.asarray(self.maze.start_cells, dtype=jnp.int32)
        goals = jnp.asarray(self.maze.goal_cells, dtype=jnp.int32)
        start = starts[jax.random.randint(k_start, (), 0, starts.shape[0])]
        goal = goals[jax.random.randint(k_goal, (), 0, goals.shape[0])]
        return (
            self._noisy_cell_xy(n_start, start, self.maze.start_noise),
            self._noisy_cell_xy(n_goal, goal, self.maze.goal_noise),
        )

    def task(self, key: jax.Array, task_id) -> tuple[jax.Array, jax.Array]:
        """(start_xy, goal_xy) of OGBench's evaluation task `task_id` (1-based; may be traced)."""
        cells = jnp.asarray(self.maze.tasks, dtype=jnp.int32)  # [tasks, 2 (start, goal), 2]
        start, goal = cells[jnp.asarray(task_id, jnp.int32) - 1]
        n_start, n_goal = jax.random.split(key)
        return (
            self._noisy_cell_xy(n_start, start, self.maze.start_noise),
            self._noisy_cell_xy(n_goal, goal, self.maze.goal_noise),
        )


@dataclasses.dataclass(frozen=True)
class OpenFloorTasks:
    """Start near the origin (+-start_noise); goal at a distance drawn in [min_dist, max_dist]
    from the origin, at a uniform angle."""

    min_dist: float
    max_dist: float
    start_noise: float = 0.1

    def sample(self, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(start_xy, goal_xy) for a fresh episode."""
        k_dist, k_angle, k_start = jax.random.split(key, 3)
        dist = jax.random.uniform(k_dist, (), minval=self.min_dist, maxval=self.max_dist)
        angle = jax.random.uniform(k_angle, (), minval=-jnp.pi, maxval=jnp.pi)
        goal = dist * jnp.stack([jnp.cos(angle), jnp.sin(angle)])
        noise = self.start_noise
        return jax.random.uniform(k_start, (2,), minval=-noise, maxval=noise), goal
