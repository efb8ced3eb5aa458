"""The offline loop: the shared CRL learner on a fixed OGBench/Minari dataset.

- `config.py`: `OfflineConfig`, its presets, and the configs a dataset's plan completes
  (`resolve`; the plan itself: crlkit/data/plan.py).
- `sampling.py`: the dataset's sampling arrays and OGBench-style minibatches (device or host).
- `chunks.py`: the jitted chunks of SGD steps and the `Trainer` that runs them.
- `evaluators.py`: the env an offline policy is evaluated in (crlkit's or OGBench's gymnasium env).
- `gym_eval.py`: OGBench's task protocol in OGBench's own gymnasium envs.
- `loop.py`: `run(...)` (load, resolve, evaluate, train) and the host loop.
"""

from crlkit.train.offline.config import OfflineConfig, resolve
from crlkit.train.offline.loop import RESUMABLE_FIELDS, run, train
from crlkit.train.offline.sampling import dataset_arrays, sample_batch

__all__ = [
    "RESUMABLE_FIELDS",
    "OfflineConfig",
    "dataset_arrays",
    "resolve",
    "run",
    "sample_batch",
    "train",
]
