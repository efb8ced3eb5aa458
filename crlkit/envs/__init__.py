"""Goal-conditioned MuJoCo envs: `make(name, backend)`, the registry, specs and states.

env = make("antmaze-large")            # episode limit + auto-reset; env.unwrapped for evaluation
state = jax.vmap(env.reset)(keys)      # one EnvState per key
state = env.step_batch(state, actions)   # = jax.vmap(env.step), resets only when needed
"""

from crlkit.envs.api import EnvSpec, EnvState, GoalEnv
from crlkit.envs.maze import MazeInfo
from crlkit.envs.registry import list_envs, make, make_spec
from crlkit.envs.wrappers import AutoReset

__all__ = [
    "AutoReset",
    "EnvSpec",
    "EnvState",
    "GoalEnv",
    "MazeInfo",
    "list_envs",
    "make",
    "make_spec",
]
