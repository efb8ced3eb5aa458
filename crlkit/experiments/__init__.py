"""Experiments over many runs: depth sweeps and their reports.

- `grid.py`: `SweepConfig`, the grid's cells and each cell's configs.
- `sweep.py`: running (and continuing) a sweep, one run dir per cell.
- `report_data.py`: the numbers of a sweep's run dirs, grouped over seeds.
- `report_plots.py`: success vs depth, learning curves, cost vs depth.
- `report.py`: `write_report(DIR)`: report.md and the plots.
"""
