"""The paper's residual towers: phi(s, a), psi(g) and the tanh-Gaussian actor.

A tower is `Dense(width) -> LayerNorm -> act`, then depth/4 residual blocks of
4 x `[Dense(width) -> LayerNorm -> act]` with the block input added after the last activation.
The blocks are identical, so their parameters are stacked on a leading axis and the tower runs them
with `nn.scan`: the compiled graph holds one block whatever the depth, so compile time and memory do
not grow with depth. `unrolled=True` builds the same tower as a Python loop of separately named
blocks (the reference implementation's way), for the twin test and `bench --compare-unrolled`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from crlkit.config import NetworkConfig

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
BLOCK_LAYERS = 4
SCANNED_BLOCKS = "blocks"  # name of the stacked-parameter subtree of a scanned tower

# The paper's init: variance scaling 1/3, fan-in, uniform; biases zero (flax's default).
kernel_init = nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")

_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "swish": nn.swish,
    "relu": nn.relu,
    "gelu": nn.gelu,
}


class DenseNormAct(nn.Module):
    """Dense(width) -> optional LayerNorm -> activation."""

    width: int
    activation: str
    layer_norm: bool

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nn.Dense(self.width, kernel_init=kernel_init)(x)
        if self.layer_norm:
            x = nn.LayerNorm()(x)
        return _ACTIVATIONS[self.activation](x)


class ResidualBlock(nn.Module):
    """4 x DenseNormAct plus the skip connection; scan-shaped: (carry, _) -> (carry, None)."""

    width: int
    activation: str
    layer_norm: bool
    residual: bool

    @nn.compact
    def __call__(self, h: jax.Array, _: Any = None) -> tuple[jax.Array, None]:
        x = h
        for _layer in range(BLOCK_LAYERS):
            x = DenseNormAct(self.width, self.activation, self.layer_norm)(x)
        return (x + h if self.residual else x), None


class Tower(nn.Module):
    """Input layer then `depth / 4` residual blocks (scanned unless `unrolled`)."""

    cfg: NetworkConfig
    depth: int
    unrolled: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = self.cfg
        x = DenseNormAct(c.width, c.activation, c.layer_norm, name="input")(x)
        block_args = (c.width, c.activation, c.layer_norm, c.residual)
        # prevent_cse=False is safe (and faster) under scan, which already blocks CSE.
        block = nn.remat(ResidualBlock, prevent_cse=self.unrolled) if c.remat else ResidualBlock
        n_blocks = self.depth // BLOCK_LAYERS
        if self.unrolled:
            for i in range(n_blocks):
                x, _ = block(*block_args, name=f"block_{i}")(x, None)
            return x
        scanned = nn.scan(
            block,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            length=n_blocks,
        )
        x, _ = scanned(*block_args, name=SCANNED_BLOCKS)(x, None)
        return x


class Encoder(nn.Module):
    """A tower plus a linear `repr_dim` head: phi(concat(s, a)) or psi(g)."""

    cfg: NetworkConfig
    unrolled: bool = False

    @nn.compact
    def __call__(self, *inputs: jax.Array) -> jax.Array:
        x = jnp.concatenate(inputs, axis=-1)
        x = Tower(self.cfg, self.cfg.critic_depth, self.unrolled)(x)
        return nn.Dense(self.cfg.repr_dim, kernel_init=kernel_init)(x)


class Actor(nn.Module):
    """Tanh-Gaussian policy head on a tower over concat(state, goal): returns (mean, log_std)."""

    cfg: NetworkConfig
    action_dim: int
    unrolled: bool = False

    @nn.compact
    def __call__(self, state: jax.Array, goal: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = jnp.concatenate([state, goal], axis=-1)
        x = Tower(self.cfg, self.cfg.actor_depth, self.unrolled)(x)
        mean = nn.Dense(self.action_dim, kernel_init=kernel_init)(x)
        raw = nn.Dense(self.action_dim, kernel_init=kernel_init)(x)
        # Squash log_std smoothly into [LOG_STD_MIN, LOG_STD_MAX].
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (jnp.tanh(raw) + 1.0)
        return mean, log_std


def unstack_blocks(params: Any) -> Any:
    """Scanned-tower params -> the unrolled twin's params (block_0, block_1, ...), same values."""
    if not isinstance(params, dict):
        return params
    out: dict[str, Any] = {}
    for name, sub in params.items():
        if name == SCANNED_BLOCKS:
            n = jax.tree_util.tree_leaves(sub)[0].shape[0]
            for i in range(n):
                out[f"block_{i}"] = jax.tree_util.tree_map(lambda p, i=i: p[i], sub)
        else:
            out[name] = unstack_blocks(sub)
    return out


def count_params(params: Any) -> int:
    """Number of scalars in a parameter pytree."""
    return sum(int(p.size) for p in jax.tree_util.tree_leaves(params))
