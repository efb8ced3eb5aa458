"""Training loops and what they share.

- `rundir.py`: run directories (config.json, metrics.jsonl/csv, summary.json, checkpoints/), atomic
  checkpoints of any pytree, resume with a config diff, the progress bar; see docs/runs.md.
- `online.py`: `crlkit online`, one jitted epoch = scan over (env unroll -> replay insert -> sample
  and relabel -> learner updates); the host loop only times, evaluates, logs and checkpoints.
- `offline.py`: `crlkit offline`, jitted scans of (sample -> update) over a fixed dataset.
- `evaluate.py`: evaluation (success, final-step success, time at goal; OGBench tasks).
"""
