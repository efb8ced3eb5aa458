"""Goal logic of the collect styles: navigate (vertex cells), stitch (cells k BFS steps away)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from crlkit.collect.config import CollectConfig
from crlkit.collect.maze_graph import MazeGraph, cell_id


class Goals:
    """Goal draws for the styles: navigate (vertex cells), stitch (cells k BFS steps away)."""

    def __init__(self, env, graph: MazeGraph | None, cfg: CollectConfig):
        self.env, self.graph, self.cfg = env, graph, cfg
        self.ogbench = env.spec.ogbench_env_id is not None

    def navigate(self, key: jax.Array) -> jax.Array:
        """A new navigate goal: an OGBench vertex cell plus cell noise (else the env's own draw)."""
        maze = self.env.spec.maze
        if maze is None or not self.ogbench:
            return self._own_goal(key)
        k_cell, k_noise = jax.random.split(key)
        logits = jnp.where(jnp.asarray(self.graph.vertex), 0.0, -jnp.inf)
        return self._cell_xy(jax.random.categorical(k_cell, logits), k_noise)

    def stitch(self, key: jax.Array, start_xy: jax.Array) -> jax.Array:
        """A goal `stitch_cells` BFS steps from the start cell (the start cell when none is)."""
        if self.env.spec.maze is None:
            return self._own_goal(key)
        k_cell, k_noise = jax.random.split(key)
        start = cell_id(self.env.spec.maze, self.graph, start_xy)
        mask = jnp.asarray(self.graph.dist)[start] == self.cfg.stitch_cells
        cell = jax.random.categorical(k_cell, jnp.where(mask, 0.0, -jnp.inf))
        return self._cell_xy(jnp.where(mask.any(), cell, start), k_noise)

    def _own_goal(self, key: jax.Array) -> jax.Array:
        """A goal as the env's own reset draws it (open floors, the paper's mazes, the arms)."""
        return self.env.sample_goal(key)

    def _cell_xy(self, cell: jax.Array, key: jax.Array) -> jax.Array:
        maze = self.env.spec.maze
        xy = maze.cell_to_xy(jnp.stack([cell // self.graph.cols, cell % self.graph.cols]))
        noise = maze.goal_noise
        return self.env.goal_of_xy(xy + jax.random.uniform(key, (2,), minval=-noise, maxval=noise))
