"""The one maze builder: walls from a 0/1 grid (unit size, wall height), shared by every body.

Convention (OGBench's): grid row `i` runs along world y, column `j` along world x; cell (i, j) is
centred at (j * unit - offset_x, i * unit - offset_y); 1 = wall, 0 = free.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import mujoco
import numpy as np

Cell = tuple[int, int]


@dataclasses.dataclass(frozen=True)
class MazeInfo:
    """A maze layout plus where episodes start and where goals are drawn (hashable, static).

    Attributes:
      grid: rows of 0/1 (1 = wall); row i along world y, column j along world x.
      unit: side of one cell in metres.
      offset: (offset_x, offset_y); cell (i, j) is centred at
        (j * unit - offset_x, i * unit - offset_y).
      height: wall height in units (the wall box is height * unit tall).
      start_cells: cells an episode may start in (drawn uniformly).
      goal_cells: cells a goal may be drawn in (drawn uniformly).
      tasks: OGBench's fixed evaluation tasks, ((start cell), (goal cell)) for task_id 1..N.
      start_noise: the start xy gets uniform noise in [-start_noise, start_noise] per axis
        (OGBench: unit / 4, its add_noise; the paper's mazes: 0.1, a small jitter around R).
      goal_noise: the same for the goal xy (OGBench: unit / 4; the paper's mazes: 0, cell centres).
    """

    grid: tuple[tuple[int, ...], ...]
    unit: float
    offset: tuple[float, float]
    height: float
    start_cells: tuple[Cell, ...]
    goal_cells: tuple[Cell, ...]
    tasks: tuple[tuple[Cell, Cell], ...]
    start_noise: float
    goal_noise: float

    @property
    def array(self) -> np.ndarray:
        """The grid as an int array [rows, cols]."""
        return np.asarray(self.grid, dtype=np.int32)

    @property
    def free_cells(self) -> tuple[Cell, ...]:
        """Every free cell (i, j), row-major."""
        return tuple(tuple(int(v) for v in c) for c in np.argwhere(self.array == 0))

    def cell_to_xy(self, cell):
        """World (x, y) of a cell centre; `cell` is (i, j) or an array [..., 2] of (i, j)."""
        ij = jnp.asarray(cell, dtype=jnp.float32)
        x = ij[..., 1] * self.unit - self.offset[0]
        y = ij[..., 0] * self.unit - self.offset[1]
        return jnp.stack([x, y], axis=-1)

    def xy_to_cell(self, xy):
        """Cell (i, j) holding world xy (array [..., 2]), int32 [..., 2] (OGBench's xy_to_ij)."""
        xy = jnp.asarray(xy, dtype=jnp.float32)
        j = jnp.floor((xy[..., 0] + self.offset[0] + 0.5 * self.unit) / self.unit)
        i = jnp.floor((xy[..., 1] + self.offset[1] + 0.5 * self.unit) / self.unit)
        return jnp.stack([i, j], axis=-1).astype(jnp.int32)

    def is_free(self, xy):
        """True where world xy lies in a free cell of the grid (False outside the grid)."""
        ij = self.xy_to_cell(xy)
        rows, cols = self.array.shape
        inside = (ij[..., 0] >= 0) & (ij[..., 0] < rows) & (ij[..., 1] >= 0) & (ij[..., 1] < cols)
        safe = jnp.clip(ij, 0, jnp.asarray([rows - 1, cols - 1]))
        return inside & (jnp.asarray(self.array)[safe[..., 0], safe[..., 1]] == 0)


def touchable_walls(grid: np.ndarray) -> list[Cell]:
    """Wall cells with a free cell among their 8 neighbours.

    A body inside the free cells can only ever touch these; the others never enter a contact, so
    leaving them out changes no dynamics and saves collision work (MJX checks every geom pair).
    """
    rows, cols = grid.shape
    padded = np.pad(grid == 0, 1, constant_values=False)
    near_free = np.zeros_like(grid, dtype=bool)
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            near_free |= padded[1 + di : 1 + di + rows, 1 + dj : 1 + dj + cols]
    return [tuple(int(v) for v in c) for c in np.argwhere((grid == 1) & near_free)]


def add_maze(spec: mujoco.MjSpec, maze: MazeInfo) -> None:
    """Adds the maze's wall boxes to `spec`'s worldbody and centres the floor under the maze.

    Walls are as OGBench builds them (box geoms named block_i_j, contype = conaffinity = 1); they
    all sit in the world body, so MuJoCo never tests them against each other or the floor.
    """
    half = maze.unit / 2
    half_h = maze.height / 2 * maze.unit
    for i, j in touchable_walls(maze.array):
        x, y = np.asarray(maze.cell_to_xy((i, j)), dtype=np.float64)
        spec.worldbody.add_geom(
            name=f"block_{i}_{j}",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            pos=[x, y, half_h],
            size=[half, half, half_h],
            contype=1,
            conaffinity=1,
            material="wall",
        )
    rows, cols = maze.array.shape
    floor = spec.geom("floor")
    # The floor plane collides everywhere; its size only matters for rendering (OGBench's formula).
    cx = (cols - 1) * maze.unit / 2 - maze.offset[0]
    cy = (rows - 1) * maze.unit / 2 - maze.offset[1]
    floor.pos = [cx, cy, 0.0]
    floor.size = [cols * maze.unit / 2, rows * maze.unit / 2, 0.2]


def add_target(spec: mujoco.MjSpec) -> None:
    """Adds OGBench's non-colliding goal marker (for rendering; it has no effect on physics)."""
    spec.worldbody.add_geom(
        name="target",
        type=mujoco.mjtGeom.mjGEOM_CYLINDER,
        size=[0.5, 0.05, 0.0],
        pos=[0.0, 0.0, 0.05],
        material="target",
        contype=0,
        conaffinity=0,
    )


def limit_wall_pairs(spec: mujoco.MjSpec, model: mujoco.MjModel) -> int:
    """Caps MJX's per-type geom-pair checks at 4 x (robot geoms of one type); returns the cap.

    MJX (impl='jax') tests every robot geom against every wall unless the model carries the
    numeric `max_geom_pairs`, which keeps the k pairs whose bounding spheres are nearest. Only
    pairs with overlapping bounding spheres can touch, and a robot geom in a free cell overlaps at
    most 3 wall cells (those around its nearest cell corner), so k = 4 x (robot geoms of a type)
    keeps every pair that can touch: contacts are unchanged. MuJoCo C ignores the numeric.
    """
    robot = model.geom_bodyid != 0
    counts = np.bincount(model.geom_type[robot], minlength=int(mujoco.mjtGeom.mjNGEOMTYPES))
    cap = int(4 * counts.max())
    # mujoco-mjx 3.x reads numeric_data[numeric id] (not the numeric's address), so the cap must
    # be numeric 0: re-add the asset's own numerics (the ant's init_qpos) after it.
    others = [(n.name, list(n.data)) for n in spec.numerics]
    for numeric in list(spec.numerics):
        spec.delete(numeric)
    spec.add_numeric(name="max_geom_pairs", data=[float(cap)])
    for name, data in others:
        spec.add_numeric(name=name, data=data)
    return cap
