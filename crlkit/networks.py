"""The paper's residual towers: phi(s, a), psi(g) and the tanh-Gaussian actor.

A tower is `Dense(width) -> LayerNorm -> act`, then depth/4 residual blocks of
4 x `[Dense(width) -> LayerNorm -> act]` with the block input added after the last activation.
The blocks are identical, so their parameters live stacked in one pytree with leading axis
[depth/4, 4] and the tower runs them with `lax.scan`: the compiled graph holds one block whatever
the depth, so compile time does not grow with depth. With `remat`, each block is recomputed in the
backward pass; past NESTED_REMAT_BLOCKS blocks the scan is split into ~sqrt(n) checkpointed groups
so that only ~2 sqrt(n) block inputs are stored. `unrolled=True` runs the same parameters with a
Python loop (the reference implementation's way), for the twin test and `bench --compare-unrolled`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from crlkit.config import NetworkConfig

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
BLOCK_LAYERS = 4
BLOCKS = "blocks"  # name of a tower's stacked block parameters

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


BlockParams = dict[str, jax.Array]
# From this many blocks on, remat checkpoints groups of blocks as well as blocks (two levels).
NESTED_REMAT_BLOCKS = 128
LAYER_NORM_EPS = 1e-6  # flax's LayerNorm default, so the input layer and the blocks agree


def _init_blocks(key: jax.Array, n_blocks: int, width: int, layer_norm: bool) -> BlockParams:
    # Kernels [n, 4, w, w]; fan-in is the second-to-last axis, the first two are batch axes.
    init = nn.initializers.variance_scaling(
        1 / 3, "fan_in", "uniform", in_axis=-2, out_axis=-1, batch_axis=(0, 1)
    )
    params = {
        "kernel": init(key, (n_blocks, BLOCK_LAYERS, width, width), jnp.float32),
        "bias": jnp.zeros((n_blocks, BLOCK_LAYERS, width), jnp.float32),
    }
    if layer_norm:
        params["scale"] = jnp.ones((n_blocks, BLOCK_LAYERS, width), jnp.float32)
        params["shift"] = jnp.zeros((n_blocks, BLOCK_LAYERS, width), jnp.float32)
    return params


def _layer_norm(x: jax.Array, scale: jax.Array, shift: jax.Array) -> jax.Array:
    mean = jnp.mean(x, -1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), -1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + LAYER_NORM_EPS) * scale + shift


def residual_block(p: BlockParams, h: jax.Array, cfg: NetworkConfig) -> jax.Array:
    """One block: 4 x [Dense -> LayerNorm -> act], plus the skip connection. `p` has axis [4]."""
    act = _ACTIVATIONS[cfg.activation]
    x = h
    for i in range(BLOCK_LAYERS):
        x = x @ p["kernel"][i] + p["bias"][i]
        if cfg.layer_norm:
            x = _layer_norm(x, p["scale"][i], p["shift"][i])
        x = act(x)
    return x + h if cfg.residual else x


def remat_groups(n_blocks: int) -> int:
    """Number of checkpointed groups: the largest divisor of n_blocks not above sqrt(n_blocks)."""
    if n_blocks < NESTED_REMAT_BLOCKS:
        return 1
    return max(g for g in range(1, int(n_blocks**0.5) + 1) if n_blocks % g == 0)


def run_blocks(params: BlockParams, h: jax.Array, cfg: NetworkConfig, unrolled: bool) -> jax.Array:
    """Apply the stacked blocks in order: scanned (optionally rematerialised) or unrolled."""
    n = params["kernel"].shape[0]
    if unrolled:
        for i in range(n):
            h = residual_block(jax.tree_util.tree_map(lambda p, i=i: p[i], params), h, cfg)
        return h

    def step(carry: jax.Array, p: BlockParams) -> tuple[jax.Array, None]:
        return residual_block(p, carry, cfg), None

    if not cfg.remat:
        return jax.lax.scan(step, h, params)[0]
    # prevent_cse=False is safe under scan, which already keeps the recomputation apart.
    step = jax.checkpoint(step, prevent_cse=False)
    groups = remat_groups(n)
    if groups == 1:
        return jax.lax.scan(step, h, params)[0]

    @functools.partial(jax.checkpoint, prevent_cse=False)
    def group_step(carry: jax.Array, group: BlockParams) -> tuple[jax.Array, None]:
        return jax.lax.scan(step, carry, group)[0], None

    grouped = jax.tree_util.tree_map(lambda p: p.reshape(groups, n // groups, *p.shape[1:]), params)
    return jax.lax.scan(group_step, h, grouped)[0]


class Tower(nn.Module):
    """Input layer then `depth / 4` residual blocks (stacked params; scanned unless unrolled)."""

    cfg: NetworkConfig
    depth: int
    unrolled: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = self.cfg
        x = DenseNormAct(c.width, c.activation, c.layer_norm, name="input")(x)
        blocks = self.param(BLOCKS, _init_blocks, self.depth // BLOCK_LAYERS, c.width, c.layer_norm)
        return run_blocks(blocks, x, c, self.unrolled)


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


def count_params(params: Any) -> int:
    """Number of scalars in a parameter pytree."""
    return sum(int(p.size) for p in jax.tree_util.tree_leaves(params))
