"""crlkit: deep-residual contrastive RL for self-supervised, goal-conditioned control.

Folders: `networks.py`/`losses.py`/`learner.py` (the one CRL learner), `envs/` (goal-conditioned
MuJoCo envs and physics backends), `data/` (datasets, replay buffer, goal samplers), `train/`
(the online and offline loops), `bench/` (benchmarks behind `crlkit bench`).
"""

__version__ = "0.1.0"
