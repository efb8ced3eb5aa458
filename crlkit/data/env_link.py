"""Which crlkit env a dataset belongs to, from the env name or id it records.

A dataset names its env as a crlkit name (`pointmaze-medium`), an OGBench id
(`pointmaze-medium-v0`, the env_spec of a Minari dataset recorded around ogbench's env), or not at
all. The goal slice of a dataset that records none comes from that env's goal contract.
"""

from __future__ import annotations

from crlkit.envs.registry import REGISTRY, canonical_name, make_spec


def crlkit_env(env_id: str) -> str | None:
    """crlkit's env for a crlkit name or an OGBench env id with a crlkit twin, else None."""
    try:
        return canonical_name(env_id)
    except ValueError:
        pass
    same = [name for name, entry in REGISTRY.items() if entry.ogbench_env_id == env_id]
    return same[0] if same else None


def env_goal_indices(env: str) -> tuple[int, ...]:
    """The goal slice (observation columns) of a crlkit env."""
    return tuple(make_spec(env).goal_indices)
