"""Experiments over many runs: depth sweeps, their launchers and reports, published tables.

- `grid.py`: `SweepConfig`, the grid's cells and each cell's configs.
- `sweep.py`: running (and continuing) a sweep, one run dir per cell.
- `launchers.py`: where cells run: inline, N local cell processes, or a Slurm job array.
- `cell.py`: one cell in its own process (`python -m crlkit.experiments.cell DIR CELL`).
- `reproduce.py`: `crlkit reproduce TABLE`: a published table as sweeps; reference.json holds
  the published numbers with their sources.
- `report_data.py`: the numbers of a sweep's run dirs, grouped over seeds.
- `report_plots.py`: success vs depth, learning curves, cost vs depth.
- `report.py`: `write_report(DIR)`: report.md and the plots.
"""
