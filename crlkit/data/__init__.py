"""Datasets and sampling.

- `dataset.py`: the one in-memory layout (OGBench's compact flat layout + episode bounds + goal
  slice) and its checks.
- `catalog.py`: `load_dataset` (catalog names, OGBench names, .npz paths, Minari ids) and the
  dataset cards in datasets/.
- `ogbench_io.py`, `minari_io.py`: OGBench `.npz` and Minari HDF5 readers and writers.
- `env_link.py`: which crlkit env a dataset belongs to (its goal slice when it records none).
- `plan.py`: what a dataset means for an offline run, decided once (`plan_dataset` ->
  `DatasetPlan`: family, goal space, evaluation target, OGBench's per-dataset defaults).
- `replay.py`: the on-device trajectory ring buffer (pure init/insert/sample).
- `goals.py`: goal samplers (geometric / uniform future, random), jittable with NumPy twins.
"""
