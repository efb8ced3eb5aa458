"""Maze layouts: OGBench's grids and evaluation tasks, and the paper's online mazes.

Every layout becomes one `MazeInfo` (crlkit/envs/maze.py), whose convention is OGBench's: grid row
`i` runs along world y and column `j` along world x, cell (i, j) is centred at
(j * unit - offset_x, i * unit - offset_y), 1 = wall, 0 = free.

OGBench layouts (arena, medium, large, giant) are the grids of `ogbench.locomaze.maze` with its
offsets (4, 4) and its five fixed evaluation tasks `(start cell, goal cell)` per maze.

The paper's layouts are written below as REFERENCE.md prints them (R = start, G = goal cells), where
text cell (r, c) sits at world (r * unit, c * unit); `paper_maze` transposes the text so the same
MazeInfo convention holds with zero offsets.
"""

from __future__ import annotations

from crlkit.envs.maze import MazeInfo

OGBENCH_OFFSET = 4.0  # ogbench.locomaze.maze: _offset_x = _offset_y = 4 (at unit 4)
OGBENCH_UNIT = 4.0  # every OGBench locomaze env (point, ant and humanoid) uses unit 4
WALL_HEIGHT = 0.5  # wall height in units (OGBench maze_height; the paper's "0.5 x unit")

OGBENCH_GRIDS: dict[str, tuple[str, ...]] = {
    "arena": (
        "11111111",
        "10000001",
        "10000001",
        "10000001",
        "10000001",
        "10000001",
        "10000001",
        "11111111",
    ),
    "medium": (
        "11111111",
        "10011001",
        "10010001",
        "11000111",
        "10010001",
        "10100101",
        "10001001",
        "11111111",
    ),
    "large": (
        "111111111111",
        "100001000001",
        "101101010101",
        "100000010001",
        "101111011101",
        "100101000001",
        "110101010111",
        "100100010001",
        "111111111111",
    ),
    "giant": (
        "1111111111111111",
        "1010000001100001",
        "1010110101001101",
        "1000100100010001",
        "1011101111110101",
        "1000100010000101",
        "1110101001010111",
        "1000100100010001",
        "1010101111110101",
        "1011100010001101",
        "1000001000100001",
        "1111111111111111",
    ),
}

# (start cell, goal cell) of OGBench's evaluation tasks 1..N, as ogbench's MazeEnv.set_tasks.
OGBENCH_TASKS: dict[str, tuple[tuple[tuple[int, int], tuple[int, int]], ...]] = {
    "arena": (((1, 1), (6, 6)),),
    "medium": (
        ((1, 1), (6, 6)),
        ((6, 1), (1, 6)),
        ((5, 3), (4, 2)),
        ((6, 5), (6, 1)),
        ((2, 6), (1, 1)),
    ),
    "large": (
        ((1, 1), (7, 10)),
        ((5, 4), (7, 1)),
        ((7, 4), (1, 10)),
        ((3, 8), (5, 4)),
        ((1, 1), (5, 4)),
    ),
    "giant": (
        ((1, 1), (10, 14)),
        ((1, 14), (10, 1)),
        ((8, 14), (1, 1)),
        ((8, 3), (5, 12)),
        ((5, 9), (3, 8)),
    ),
}

# The paper's mazes, as printed in REFERENCE.md ("The paper's online tasks").
PAPER_TEXT: dict[str, tuple[str, ...]] = {
    "u4": ("11111", "1GGG1", "1R1G1", "111G1", "1G1G1", "1GGG1", "11111"),
    "u5": (
        "11111111",
        "1GGGGGG1",
        "1R1111G1",
        "111111G1",
        "1G1111G1",
        "1GGGGGG1",
        "11111111",
    ),
    "big": (
        "11111111",
        "1RG11GG1",
        "1GG1GGG1",
        "11GGG111",
        "1GG1GGG1",
        "1G1GG1G1",
        "1GGG1GG1",
        "11111111",
    ),
    "hardest": (
        "111111111111",
        "1RGGG1GGGGG1",
        "1G11G1G1G1G1",
        "1GGGGGG1GGG1",
        "1G1111G111G1",
        "1GG1G1GGGGG1",
        "11G1G1G1G111",
        "1GG1GGG1GGG1",
        "111111111111",
    ),
    "u": ("11111", "1RGG1", "111G1", "1GGG1", "11111"),
}
# The paper's evaluation variants (its `*_eval` layouts: the same walls, goals only in the far
# cells), as its envs/ant_maze.py and envs/humanoid_maze.py define them. Its humanoid big_maze_eval
# differs from the ant's in one cell, so the two are kept apart.
PAPER_EVAL_TEXT: dict[str, tuple[str, ...]] = {
    "u4-eval": ("11111", "10001", "1R101", "11101", "1G101", "1GGG1", "11111"),
    "u5-eval": (
        "11111111",
        "10000001",
        "1R111101",
        "11111101",
        "1G1111G1",
        "1GGGGGG1",
        "11111111",
    ),
    "big-eval": (
        "11111111",
        "1R011GG1",
        "100100G1",
        "11000111",
        "10010001",
        "101G01G1",
        "10GG1GG1",
        "11111111",
    ),
    "u-eval": ("11111", "1R001", "11101", "1GGG1", "11111"),
    "humanoid-big-eval": (
        "11111111",
        "1R011GG1",
        "10010GG1",
        "11000111",
        "10010001",
        "101G01G1",
        "10GG1GG1",
        "11111111",
    ),
}
PAPER_TEXT.update(PAPER_EVAL_TEXT)
PAPER_ANT_UNIT = 4.0
PAPER_HUMANOID_UNIT = 2.0
PAPER_ANT_START_NOISE = 0.1  # the paper's ant: uniform reset noise 0.1 on every qpos entry
PAPER_HUMANOID_START_NOISE = 0.0  # the paper's humanoid: reset_noise_scale 0


def _rows(text: tuple[str, ...]) -> tuple[tuple[int, ...], ...]:
    """'1' -> 1 (wall); every other character ('0', 'R', 'G') -> 0 (free)."""
    return tuple(tuple(1 if ch == "1" else 0 for ch in row) for row in text)


def ogbench_maze(layout: str) -> MazeInfo:
    """MazeInfo of an OGBench layout, with its evaluation tasks; starts and goals: any free cell."""
    grid = _rows(OGBENCH_GRIDS[layout])
    free = tuple((i, j) for i, row in enumerate(grid) for j, v in enumerate(row) if v == 0)
    return MazeInfo(
        grid=grid,
        unit=OGBENCH_UNIT,
        offset=(OGBENCH_OFFSET, OGBENCH_OFFSET),
        height=WALL_HEIGHT,
        start_cells=free,
        goal_cells=free,
        tasks=OGBENCH_TASKS[layout],
        start_noise=OGBENCH_UNIT / 4,
        goal_noise=OGBENCH_UNIT / 4,
    )


def paper_maze(layout: str, unit: float, start_noise: float = PAPER_ANT_START_NOISE) -> MazeInfo:
    """MazeInfo of one of the paper's mazes: fixed R start cell, goal drawn among the G cells."""
    text = PAPER_TEXT[layout]
    # Transpose: text (r, c) is world (r * unit, c * unit), i.e. MazeInfo cell (i=c, j=r).
    cols = tuple("".join(row[c] for row in text) for c in range(len(text[0])))
    cells = {
        ch: tuple((i, j) for i, row in enumerate(cols) for j, v in enumerate(row) if v == ch)
        for ch in "RG"
    }
    return MazeInfo(
        grid=_rows(cols),
        unit=unit,
        offset=(0.0, 0.0),
        height=WALL_HEIGHT,
        start_cells=cells["R"],
        goal_cells=cells["G"],
        tasks=(),
        start_noise=start_noise,
        goal_noise=0.0,
    )


def text_maze(rows: tuple[str, ...], unit: float = OGBENCH_UNIT) -> MazeInfo:
    """A maze of your own, drawn as OGBench draws its grids: row i along world y, column j along
    x, cell (1, 1) at the origin; '1' wall, '0' free, 'R' start cells, 'G' goal cells (without
    R or G: every free cell). Starts and goals get OGBench's +-unit/4 noise; no fixed tasks."""
    if len({len(r) for r in rows}) != 1 or set("".join(rows)) - set("10RG"):
        raise ValueError(f"maze rows must be equally long strings of 1, 0, R, G; got {rows!r}")
    grid = _rows(rows)
    free = tuple((i, j) for i, row in enumerate(grid) for j, v in enumerate(row) if v == 0)
    marked = {
        ch: tuple((i, j) for i, row in enumerate(rows) for j, v in enumerate(row) if v == ch)
        for ch in "RG"
    }
    return MazeInfo(
        grid=grid,
        unit=unit,
        offset=(unit, unit),
        height=WALL_HEIGHT,
        start_cells=marked["R"] or free,
        goal_cells=marked["G"] or free,
        tasks=(),
        start_noise=unit / 4,
        goal_noise=unit / 4,
    )
