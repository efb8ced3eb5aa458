"""crlkit: deep-residual contrastive RL for self-supervised, goal-conditioned control.

Bottom-up (docs/design.md "Layers"): `files.py`, `checks.py`, `metric_names.py` (atomic files,
validators, metric names); `config.py`, `networks.py`, `losses.py`, `learner.py` (the one CRL
learner); `envs/` (goal-conditioned MuJoCo envs, bodies, physics backends); `data/` (datasets,
replay buffer, goal samplers); `runs/` (run dirs, checkpoints, sinks, progress); `train/` (the
online and offline loops) and `collect/` (datasets from policies); `render/` (videos, trajectory
maps); `experiments/` (sweeps, reports); `bench/` (benchmarks behind `crlkit bench`).
"""

__version__ = "0.1.0"
