"""Run directories and what lives in them.

- `rundir.py`: RunDir (config.json, metrics.jsonl/csv, summary.json, checkpoints/), resume checks,
  `read_run_config` (the one reader of a run's config.json).
- `checkpoint.py`: checkpoints through orbax's CheckpointManager (items state, replay, meta;
  load into a template, partial actor restore, list).
- `sinks.py`: optional TensorBoard / Weights & Biases sinks.
- `progress.py`: the progress bar both loops show.
- `actor.py`: a trained actor (networks + params) from a run's checkpoint.
"""
