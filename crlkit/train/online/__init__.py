"""The online loop (the paper's regime): explore in vectorized envs, learn to reach goals.

- `config.py`: `OnlineConfig`, the `quickstart` and `paper` presets, config.json form.
- `epoch.py`: `OnlineState`, `Setup`, the jitted epoch (unroll -> replay -> SGD updates).
- `loop.py`: `train(...)` and `OnlineChunk`, the epoch as the host loop (train/hostloop.py)
  drives it.
"""

from crlkit.train.online.config import (
    PRESETS,
    QUICKSTART,
    RESUMABLE_FIELDS,
    OnlineConfig,
    config_dict,
    configs_from_dict,
)
from crlkit.train.online.epoch import OnlineState, Setup, init_state, make_setup
from crlkit.train.online.loop import train

__all__ = [
    "PRESETS",
    "QUICKSTART",
    "RESUMABLE_FIELDS",
    "OnlineConfig",
    "OnlineState",
    "Setup",
    "config_dict",
    "configs_from_dict",
    "init_state",
    "make_setup",
    "train",
]
