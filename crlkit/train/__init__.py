"""The training loops and what they share.

- `online/`: `crlkit online` (config and presets, the jitted epoch, the host loop).
- `offline/`: `crlkit offline` (config and presets, sampling, jitted chunks, evaluators, loop).
- `evaluate.py`: evaluation in crlkit's envs (success, time at goal; OGBench's tasks).
- `hostloop.py`: what both host loops do between compiled chunks (clock, events, summary).
- `parallel.py`: the data-parallel mesh and multi-host setup (jax.distributed); docs/scale.md.
"""
