"""Physics backends behind one contract (see base.py): `mjx`, `native`, `warp`, `spring`.

`auto` picks `native` (MuJoCo C on CPU threads) when JAX's default device is a CPU and `mjx`
otherwise (GPU/TPU), because MJX's JAX implementation is very slow on CPU for maze models.
`spring` (Brax's spring pipeline, the paper's physics) needs the optional `brax` package.
"""

from __future__ import annotations

import importlib

import jax

from crlkit.envs.backends.base import PhysicsBackend, PhysicsState

# name -> "module:class"; each class is constructed as cls(mj_model, n_substeps).
BACKENDS: dict[str, str] = {
    "mjx": "crlkit.envs.backends.mjx:MjxBackend",
    "native": "crlkit.envs.backends.native:NativeBackend",
    "warp": "crlkit.envs.backends.warp:WarpBackend",
    "spring": "crlkit.envs.backends.spring:SpringBackend",
}
BACKEND_CHOICES = ("auto", *BACKENDS)


def resolve_backend(name: str) -> str:
    """Maps `auto` to a concrete backend name for this machine; validates the name."""
    if name not in BACKEND_CHOICES:
        raise ValueError(f"unknown backend {name!r}; valid: {', '.join(BACKEND_CHOICES)}")
    if name != "auto":
        return name
    return "native" if jax.default_backend() == "cpu" else "mjx"


def make_backend(name: str, mj_model, n_substeps: int) -> PhysicsBackend:
    """Builds the named backend (after `resolve_backend`) for a compiled MuJoCo model."""
    module, cls = BACKENDS[resolve_backend(name)].split(":")
    return getattr(importlib.import_module(module), cls)(mj_model, n_substeps)


__all__ = [
    "BACKENDS",
    "BACKEND_CHOICES",
    "PhysicsBackend",
    "PhysicsState",
    "make_backend",
    "resolve_backend",
]
