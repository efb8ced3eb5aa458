"""BFS tables over a maze's cells: OGBench's oracle subgoals and goal ("vertex") cells."""

from __future__ import annotations

import dataclasses
from collections import deque

import jax
import jax.numpy as jnp
import numpy as np

_OFFSETS = ((-1, 0), (0, -1), (1, 0), (0, 1))  # OGBench's BFS neighbour order


@dataclasses.dataclass(frozen=True)
class MazeGraph:
    """BFS tables over a maze's cells (row-major cell ids i * cols + j), built once with NumPy.

    Attributes:
      cols: grid width.
      dist: [cells, cells] BFS steps between free cells (-1: unreachable or wall).
      next_cell: [goal, cell] the neighbour of `cell` one BFS step closer to `goal` (itself when
        none is closer), chosen as OGBench's get_oracle_subgoal does.
      vertex: [cells] free cells that are not straight-corridor cells (OGBench's goal cells).
    """

    cols: int
    dist: np.ndarray
    next_cell: np.ndarray
    vertex: np.ndarray

    @classmethod
    def build(cls, grid: np.ndarray) -> MazeGraph:
        rows, cols = grid.shape
        n = rows * cols
        dist = np.stack([_bfs(grid, divmod(c, cols)) for c in range(n)])
        next_cell = np.tile(np.arange(n), (n, 1))
        for goal in range(n):
            for cell in range(n):
                i, j = divmod(cell, cols)
                best = cell
                for di, dj in _OFFSETS:
                    ni, nj = i + di, j + dj
                    nb = ni * cols + nj
                    if 0 <= ni < rows and 0 <= nj < cols and grid[ni, nj] == 0:
                        # OGBench compares -1 (unreached) as a number too; keep its tie rules.
                        if dist[goal, nb] < dist[goal, best]:
                            best = nb
                next_cell[goal, cell] = best
        return cls(cols=cols, dist=dist, next_cell=next_cell, vertex=_vertex_cells(grid))


def _bfs(grid: np.ndarray, start: tuple[int, int]) -> np.ndarray:
    """BFS steps from `start` to every cell (-1 for walls and unreachable cells)."""
    rows, cols = grid.shape
    dist = np.full(rows * cols, -1, np.int32)
    if grid[start] != 0:
        return dist
    dist[start[0] * cols + start[1]] = 0
    queue = deque([start])
    while queue:
        i, j = queue.popleft()
        for di, dj in _OFFSETS:
            ni, nj = i + di, j + dj
            if 0 <= ni < rows and 0 <= nj < cols and grid[ni, nj] == 0:
                if dist[ni * cols + nj] == -1:
                    dist[ni * cols + nj] = dist[i * cols + j] + 1
                    queue.append((ni, nj))
    return dist


def _vertex_cells(grid: np.ndarray) -> np.ndarray:
    """Mask of free cells that are not straight corridors (walls on both sides, open ahead)."""
    free = grid == 0
    padded = np.pad(grid, 1, constant_values=1)
    up, down = padded[:-2, 1:-1] == 0, padded[2:, 1:-1] == 0
    left, right = padded[1:-1, :-2] == 0, padded[1:-1, 2:] == 0
    vertical = up & down & ~left & ~right
    horizontal = left & right & ~up & ~down
    return (free & ~vertical & ~horizontal).reshape(-1)


def cell_id(maze, graph: MazeGraph, xy: jax.Array) -> jax.Array:
    rows = len(maze.grid)
    """Row-major id of the (clipped) cell holding `xy`."""
    ij = jnp.clip(maze.xy_to_cell(xy), 0, jnp.asarray([rows - 1, graph.cols - 1]))
    return ij[0] * graph.cols + ij[1]
