"""The training loops and what they share.

- `online/`: `crlkit online` (config and presets, the jitted epoch, the host loop).
- `offline/`: `crlkit offline` (config and presets, sampling, jitted chunks, evaluators, loop).
- `evaluate.py`: evaluation in crlkit's envs (success, time at goal; OGBench's tasks).
- `hostloop.py`: the one host loop (`HostLoop`) and the `Chunk` protocol the online epoch and
  the offline chunk implement (clock, events, checkpoints, stop signals, summary).
- `parallel.py`: the data-parallel mesh and multi-host setup (jax.distributed); docs/scale.md.
"""
