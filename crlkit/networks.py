"""The towers phi(s, a), psi(g) and the actor: the paper's residual tower or OGBench's MLP.

A tower is `Dense(width) -> LayerNorm -> act`, then depth/4 residual blocks of
4 x `[Dense(width) -> LayerNorm -> act]` with the block input added after the last activation.
The blocks are identical, so their parameters live stacked in one pytree with leading axis
[depth/4, 4] and the tower runs them with `lax.scan`: the compiled graph holds one block whatever
the depth, so compile time does not grow with depth. With `remat`, each block is recomputed in the
backward pass; past NESTED_REMAT_BLOCKS blocks the scan is split into ~sqrt(n) checkpointed groups
so that only ~2 sqrt(n) block inputs are stored. `unrolled=True` runs the same parameters with a
Python loop (the reference implementation's way), for the twin test and `bench --compare-unrolled`.
`MLPTower` is OGBench's plain MLP (Dense -> act -> LayerNorm), chosen with `tower="mlp"`.
Switches (docs/design.md, "Architecture switches"): `residual_scale="inv-sqrt-blocks"` scales each
block's branch by 1/sqrt(blocks); `norm="hyperspherical"` is SimbaV2's hyperspherical
normalization adapted to blocks of 4 layers (unit-sphere activations, learned scalers and
interpolation). The defaults trace exactly the paper's tower.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from crlkit.config import AUTO_REMAT_DEPTH, NetworkConfig

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
BLOCK_LAYERS = 4
BLOCKS = "blocks"  # name of a tower's stacked block parameters

# The paper's init: variance scaling 1/3, fan-in, uniform; biases zero (flax's default).
kernel_init = nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")
# OGBench's init (utils/networks.py default_init): glorot uniform; the actor's mean head at 1e-2.
ogbench_init = nn.initializers.variance_scaling(1.0, "fan_avg", "uniform")
ogbench_actor_head_init = nn.initializers.variance_scaling(1e-2, "fan_avg", "uniform")

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


def _init_blocks(
    key: jax.Array, n_blocks: int, width: int, layer_norm: bool, norm: str = "layernorm"
) -> BlockParams:
    # Kernels [n, 4, w, w]; fan-in is the second-to-last axis, the first two are batch axes.
    init = nn.initializers.variance_scaling(
        1 / 3, "fan_in", "uniform", in_axis=-2, out_axis=-1, batch_axis=(0, 1)
    )
    kernel = init(key, (n_blocks, BLOCK_LAYERS, width, width), jnp.float32)
    if norm == "hyperspherical":
        # No biases (SimbaV2's HyperDense); scalers stored at their `scale` (see _scaled).
        return {
            "kernel": kernel,
            "scaler": jnp.full((n_blocks, BLOCK_LAYERS, width), _scaler_scale(width)),
            "alpha": jnp.full((n_blocks, width), _alpha_scale(width)),
        }
    params = {"kernel": kernel, "bias": jnp.zeros((n_blocks, BLOCK_LAYERS, width), jnp.float32)}
    if layer_norm:
        params["scale"] = jnp.ones((n_blocks, BLOCK_LAYERS, width), jnp.float32)
        params["shift"] = jnp.zeros((n_blocks, BLOCK_LAYERS, width), jnp.float32)
    return params


def _layer_norm(x: jax.Array, scale: jax.Array, shift: jax.Array) -> jax.Array:
    mean = jnp.mean(x, -1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), -1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + LAYER_NORM_EPS) * scale + shift


def residual_block(p: BlockParams, h: jax.Array, cfg: NetworkConfig, n_blocks: int) -> jax.Array:
    """One block: 4 x [Dense -> LayerNorm -> act], plus the skip connection. `p` has axis [4].

    `n_blocks` (the tower's number of blocks) sets the residual scale and, for the
    hyperspherical norm, the interpolation's initial value.
    """
    if cfg.norm == "hyperspherical":
        return _hyperspherical_block(p, h, cfg, n_blocks)
    act = _ACTIVATIONS[cfg.activation]
    x = h
    for i in range(BLOCK_LAYERS):
        x = x @ p["kernel"][i] + p["bias"][i]
        if cfg.layer_norm:
            x = _layer_norm(x, p["scale"][i], p["shift"][i])
        x = act(x)
    if not cfg.residual:
        return x
    if cfg.residual_scale == "none":
        return x + h
    return x * residual_scale(cfg, n_blocks) + h


def residual_scale(cfg: NetworkConfig, n_blocks: int) -> float:
    """The factor on a block's branch before the skip add: 1, or 1 / sqrt(n_blocks)."""
    return 1.0 if cfg.residual_scale == "none" else 1.0 / n_blocks**0.5


# ---- hyperspherical normalization (SimbaV2, Lee et al. 2025), adapted to blocks of 4 layers ----
# Every choice is listed in docs/design.md ("Architecture switches").
HYPERSPHERE_EPS = 1e-8  # SimbaV2's floor on a norm before dividing by it
C_SHIFT = 3.0  # SimbaV2's constant input feature, appended before the input is projected


def l2_normalize(x: jax.Array) -> jax.Array:
    """x / ||x|| along the last axis (onto the unit sphere)."""
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), HYPERSPHERE_EPS)


def unit_columns(kernel: jax.Array) -> jax.Array:
    """The kernel with each output unit's incoming weights scaled to unit norm (axis -2)."""
    norm = jnp.linalg.norm(kernel, axis=-2, keepdims=True)
    return kernel / jnp.maximum(norm, HYPERSPHERE_EPS)


def _scaler_scale(width: int) -> float:
    return (2.0 / width) ** 0.5  # SimbaV2's scaler_scale


def _alpha_scale(width: int) -> float:
    return 1.0 / width**0.5  # SimbaV2's alpha_scale


def layer_scaler_init(width: int) -> float:
    """Initial per-unit scaler of a block layer: sqrt(width), so that a unit vector times
    unit-norm kernel columns gives pre-activations of rms ~1 (what LayerNorm gives swish)."""
    return float(width) ** 0.5


def alpha_init(n_blocks: int) -> float:
    """Initial interpolation weight of a block's output: SimbaV2's 1 / (blocks + 1)."""
    return 1.0 / (n_blocks + 1)


def _scaled(param: jax.Array, init: float, scale: float) -> jax.Array:
    # SimbaV2's Scaler: the parameter starts at `scale` and is multiplied by init / scale, so the
    # effective value starts at `init` while Adam's step is relative to `scale`.
    return param * (init / scale)


def _hyperspherical_block(
    p: BlockParams, h: jax.Array, cfg: NetworkConfig, n_blocks: int
) -> jax.Array:
    """h (unit norm) -> l2(h + c * alpha * (l2(F(h)) - h)), F = 4 x [act(s * (l2(x) @ W^))]."""
    act = _ACTIVATIONS[cfg.activation]
    width = h.shape[-1]
    x = h
    for i in range(BLOCK_LAYERS):
        s = _scaled(p["scaler"][i], layer_scaler_init(width), _scaler_scale(width))
        x = act(s * (l2_normalize(x) @ unit_columns(p["kernel"][i])))
    branch = l2_normalize(x)
    if not cfg.residual:
        return branch
    alpha = _scaled(p["alpha"], alpha_init(n_blocks), _alpha_scale(width))
    return l2_normalize(h + residual_scale(cfg, n_blocks) * alpha * (branch - h))


class HypersphericalInput(nn.Module):
    """SimbaV2's embedder: l2([x, C_SHIFT]) @ W^ (unit-norm columns, no bias), scaled, l2."""

    width: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        shift = jnp.full((*x.shape[:-1], 1), C_SHIFT, x.dtype)
        x = l2_normalize(jnp.concatenate([x, shift], axis=-1))
        kernel = self.param("kernel", kernel_init, (x.shape[-1], self.width), jnp.float32)
        scale = _scaler_scale(self.width)
        scaler = self.param("scaler", nn.initializers.constant(scale), (self.width,), jnp.float32)
        return l2_normalize(_scaled(scaler, scale, scale) * (x @ unit_columns(kernel)))


def resolve_remat(cfg: NetworkConfig, platform: str | None = None) -> bool:
    """Whether the residual blocks are rematerialised: `cfg.remat` with `auto` decided.

    auto is on at every depth on a CPU (recomputing a block there is cheaper than the memory
    traffic of storing its activations, so it is faster as well as smaller) and elsewhere when
    the deeper of the actor and critic towers has >= AUTO_REMAT_DEPTH layers, where stored
    activations dominate memory (depth 1024, width 256, batch 512 on a CPU: 18.2 GB without,
    4.0 GB with). The mlp tower has no blocks: always False. `platform` defaults to JAX's
    default backend.
    """
    if cfg.tower != "residual" or cfg.remat == "off":
        return False
    if cfg.remat == "on":
        return True
    platform = platform or jax.default_backend()
    return platform == "cpu" or max(cfg.actor_depth, cfg.critic_depth) >= AUTO_REMAT_DEPTH


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
            h = residual_block(jax.tree_util.tree_map(lambda p, i=i: p[i], params), h, cfg, n)
        return h

    def step(carry: jax.Array, p: BlockParams) -> tuple[jax.Array, None]:
        return residual_block(p, carry, cfg, n), None

    if not resolve_remat(cfg):
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
        if c.norm == "hyperspherical":
            x = HypersphericalInput(c.width, name="input")(x)
        else:
            x = DenseNormAct(c.width, c.activation, c.layer_norm, name="input")(x)
        n_blocks = self.depth // BLOCK_LAYERS
        blocks = self.param(BLOCKS, _init_blocks, n_blocks, c.width, c.layer_norm, c.norm)
        return run_blocks(blocks, x, c, self.unrolled)


class MLPTower(nn.Module):
    """OGBench's MLP body: `depth` x [Dense(width) -> act -> optional LayerNorm], glorot init."""

    cfg: NetworkConfig
    depth: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = _ACTIVATIONS[self.cfg.activation]
        for _ in range(self.depth):
            x = act(nn.Dense(self.cfg.width, kernel_init=ogbench_init)(x))
            if self.cfg.layer_norm:
                x = nn.LayerNorm()(x)
        return x


def _body(cfg: NetworkConfig, depth: int, unrolled: bool) -> nn.Module:
    """The tower `cfg.tower` names (built inside a compact module, so it nests there)."""
    return MLPTower(cfg, depth) if cfg.tower == "mlp" else Tower(cfg, depth, unrolled)


class Encoder(nn.Module):
    """A tower plus a linear `repr_dim` head: phi(concat(s, a)) or psi(g)."""

    cfg: NetworkConfig
    unrolled: bool = False

    @nn.compact
    def __call__(self, *inputs: jax.Array) -> jax.Array:
        x = jnp.concatenate(inputs, axis=-1)
        x = _body(self.cfg, self.cfg.critic_depth, self.unrolled)(x)
        init = ogbench_init if self.cfg.tower == "mlp" else kernel_init
        return nn.Dense(self.cfg.repr_dim, kernel_init=init)(x)


class Actor(nn.Module):
    """Gaussian policy head on a tower over concat(state, goal): returns (mean, log_std).

    With `const_std` (OGBench's actor) there is no log_std head and log_std is 0 (std 1);
    otherwise log_std is squashed into [LOG_STD_MIN, LOG_STD_MAX] (the paper's tanh-Gaussian).
    """

    cfg: NetworkConfig
    action_dim: int
    unrolled: bool = False
    const_std: bool = False

    @nn.compact
    def __call__(self, state: jax.Array, goal: jax.Array) -> tuple[jax.Array, jax.Array]:
        c = self.cfg
        cfg = dataclasses.replace(c, layer_norm=c.layer_norm and c.actor_layer_norm)
        x = jnp.concatenate([state, goal], axis=-1)
        x = _body(cfg, cfg.actor_depth, self.unrolled)(x)
        head_init = ogbench_actor_head_init if cfg.tower == "mlp" else kernel_init
        mean = nn.Dense(self.action_dim, kernel_init=head_init)(x)
        if self.const_std:
            return mean, jnp.zeros_like(mean)
        raw = nn.Dense(self.action_dim, kernel_init=head_init)(x)
        # Squash log_std smoothly into [LOG_STD_MIN, LOG_STD_MAX].
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (jnp.tanh(raw) + 1.0)
        return mean, log_std


def count_params(params: Any) -> int:
    """Number of scalars in a parameter pytree."""
    return sum(int(p.size) for p in jax.tree_util.tree_leaves(params))
