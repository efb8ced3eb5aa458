"""`crlkit collect`: roll out a policy in a crlkit env and write an OGBench or Minari dataset.

- `config.py`: `CollectConfig` (every field a CLI flag).
- `maze_graph.py`: BFS tables over a maze (OGBench's oracle subgoals and goal cells).
- `policies.py`: random, the scripted maze expert, or a trained run's actor.
- `goal_styles.py`: the navigate / stitch goal logic.
- `rollout.py`: vectorized, jitted rollouts in chunks.
- `run.py`: `collect(cfg)`: roll out, build the dataset, write it atomically.
"""

from crlkit.collect.config import CollectConfig
from crlkit.collect.maze_graph import MazeGraph
from crlkit.collect.run import collect

__all__ = ["CollectConfig", "MazeGraph", "collect"]
