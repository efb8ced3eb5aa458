"""Residual towers: scanned == unrolled twin, skip/LayerNorm switches, remat, parameter counts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from crlkit import networks
from crlkit.config import LearnerConfig, NetworkConfig
from crlkit.learner import Dims, act, init, make_networks
from crlkit.networks import (
    BLOCKS,
    LOG_STD_MAX,
    LOG_STD_MIN,
    Actor,
    Tower,
    count_params,
)

X = jax.random.normal(jax.random.key(0), (5, 7))


def _tower_params(cfg: NetworkConfig, depth: int):
    return Tower(cfg, depth).init(jax.random.key(1), X)["params"]


@pytest.mark.parametrize(
    "overrides,depth",
    [
        ({}, 12),
        ({"residual": False}, 12),
        ({"layer_norm": False, "activation": "relu"}, 12),
        ({"remat": "on", "activation": "gelu"}, 12),
        ({"remat": "on", "nested": True}, 36),  # two-level remat: 9 blocks in 3 groups of 3
        ({"norm": "hyperspherical"}, 12),
        ({"norm": "hyperspherical", "residual_scale": "inv-sqrt-blocks", "remat": "on"}, 12),
        ({"residual_scale": "inv-sqrt-blocks", "remat": "on", "nested": True}, 36),
    ],
)
def test_scanned_tower_equals_unrolled_twin_on_same_params(overrides, depth, monkeypatch):
    if overrides.pop("nested", False):
        # Lower the two-level threshold so a small tower takes that path too.
        monkeypatch.setattr(networks, "NESTED_REMAT_BLOCKS", 9)
        assert networks.remat_groups(depth // 4) == 3
    cfg = NetworkConfig(width=8, **overrides)
    params = _tower_params(cfg, depth)
    scanned = lambda p: Tower(cfg, depth).apply({"params": p}, X)
    unrolled = lambda p: Tower(cfg, depth, unrolled=True).apply({"params": p}, X)
    np.testing.assert_allclose(scanned(params), unrolled(params), rtol=1e-5, atol=1e-5)

    loss = lambda f: lambda p: jnp.sum(f(p) ** 2)
    g_scan = jax.grad(loss(scanned))(params)
    g_unrolled = jax.grad(loss(unrolled))(params)
    for a, b in zip(
        jax.tree_util.tree_leaves(g_scan), jax.tree_util.tree_leaves(g_unrolled), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def testremat_groups_are_about_sqrt_of_blocks():
    assert networks.remat_groups(8) == 1  # below the threshold: one level
    assert networks.remat_groups(256) == 16  # depth 1024
    assert networks.remat_groups(131) == 1  # a prime falls back to one level


def test_blocks_are_stacked_on_leading_axes():
    params = _tower_params(NetworkConfig(width=8), 16)
    kernel = params[BLOCKS]["kernel"]
    assert kernel.shape == (4, 4, 8, 8)
    assert set(params[BLOCKS]) == {"kernel", "bias", "scale", "shift"}
    # Every layer got its own initialisation, with the paper's fan-in uniform bound sqrt(1/fan_in).
    assert not np.allclose(kernel[0, 0], kernel[1, 0]) and not np.allclose(
        kernel[0, 0], kernel[0, 1]
    )
    assert float(jnp.max(jnp.abs(kernel))) <= (1 / 8) ** 0.5


def _zero_blocks(params):
    """Zero every block kernel and LayerNorm scale: each layer then outputs swish(0) = 0."""
    return {**params, BLOCKS: jax.tree_util.tree_map(jnp.zeros_like, params[BLOCKS])}


def test_skip_connection_passes_block_input_through():
    # With zeroed block weights each block computes swish(LN(0)) = swish(0) = 0, so a residual
    # tower returns its input layer's output unchanged and a plain tower returns zeros.
    for residual in (True, False):
        cfg = NetworkConfig(width=8, residual=residual)
        params = _zero_blocks(_tower_params(cfg, 8))
        out = Tower(cfg, 8).apply({"params": params}, X)
        first = Tower(cfg, 8).apply({"params": params}, X, method=lambda m, x: _input_layer(m, x))
        expected = first if residual else jnp.zeros_like(first)
        np.testing.assert_allclose(out, expected, atol=1e-6)


def _input_layer(tower: Tower, x):
    # Re-run only the tower's input layer with its own parameters.
    from crlkit.networks import DenseNormAct

    c = tower.cfg
    layer = DenseNormAct(c.width, c.activation, c.layer_norm, parent=None)
    return layer.apply({"params": tower.variables["params"]["input"]}, x)


def test_layer_norm_switch_removes_norm_params():
    with_ln = _tower_params(NetworkConfig(width=8), 4)
    without = _tower_params(NetworkConfig(width=8, layer_norm=False), 4)
    assert "scale" in with_ln[BLOCKS] and "LayerNorm_0" in with_ln["input"]
    assert "scale" not in without[BLOCKS] and "LayerNorm_0" not in without["input"]


def test_remat_changes_nothing_but_memory():
    plain, remat = NetworkConfig(width=8), NetworkConfig(width=8, remat="on")
    params = _tower_params(plain, 8)
    f = lambda cfg: lambda p: jnp.sum(Tower(cfg, 8).apply({"params": p}, X) ** 2)
    np.testing.assert_allclose(f(plain)(params), f(remat)(params), rtol=1e-6)
    for a, b in zip(
        jax.tree_util.tree_leaves(jax.grad(f(plain))(params)),
        jax.tree_util.tree_leaves(jax.grad(f(remat))(params)),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("depth,expected", [(4, 852_880), (64, 12_787_600)])
def test_parameter_count_matches_paper(depth, expected):
    # The paper quotes ~0.85M (depth 4) and ~12.8M (depth 64) for ant (29, 2, 8) at width 256.
    cfg = LearnerConfig(network=NetworkConfig(critic_depth=depth, actor_depth=depth))
    dims = Dims(29, 2, 8)
    nets = make_networks(cfg, dims)
    shapes = jax.eval_shape(lambda k: init(nets, cfg, dims, k), jax.random.key(0))
    total = count_params(shapes.critic.params) + count_params(shapes.actor.params)
    assert total == expected


def test_actor_log_std_is_squashed_and_actions_in_range():
    cfg = NetworkConfig(width=8)
    actor = Actor(cfg, action_dim=3)
    s, g = jax.random.normal(jax.random.key(2), (2, 4, 6)) * 100, jnp.zeros((2, 4, 2))
    params = actor.init(jax.random.key(3), s, g)["params"]
    mean, log_std = actor.apply({"params": params}, s, g)
    assert mean.shape == log_std.shape == (2, 4, 3)
    assert jnp.all(log_std >= LOG_STD_MIN) and jnp.all(log_std <= LOG_STD_MAX)

    nets = make_networks(LearnerConfig(network=cfg), Dims(6, 2, 3))
    det = act(nets, params, s, g, jax.random.key(4), deterministic=True)
    np.testing.assert_allclose(det, jnp.tanh(mean), rtol=1e-6)
    a1 = act(nets, params, s, g, jax.random.key(4), deterministic=False)
    a2 = act(nets, params, s, g, jax.random.key(5), deterministic=False)
    assert a1.shape == (2, 4, 3) and jnp.all(jnp.abs(a1) <= 1.0)
    assert not np.allclose(a1, a2)


# ---- architecture switches: hyperspherical norm, residual scale --------------------------------


def _hyperspherical_block_params(width: int, kernels):
    """One block's parameters at their initial scalers, with the given [4, w, w] kernels."""
    params = networks._init_blocks(jax.random.key(0), 1, width, True, "hyperspherical")
    return {**jax.tree_util.tree_map(lambda p: p[0], params), "kernel": jnp.asarray(kernels)}


SWAP, EYE = [[0.0, 1.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]]


def test_hyperspherical_block_by_hand():
    # h = (0.6, 0.8) on the unit circle; relu; kernels [swap, I, I, I] (already unit columns).
    # Layer 1: relu(sqrt(2) * (h @ swap)) = sqrt(2) * (0.8, 0.6); the next layers re-project to
    # the sphere and keep the direction, so l2(branch) = (0.8, 0.6).
    # One block: alpha = 1 / (1 + 1) = 0.5; out = l2(h + 0.5 * ((0.8, 0.6) - h)) = l2(0.7, 0.7).
    h = jnp.array([0.6, 0.8])
    params = _hyperspherical_block_params(2, [SWAP, EYE, EYE, EYE])
    cfg = NetworkConfig(width=2, activation="relu", norm="hyperspherical")
    out = networks.residual_block(params, h, cfg, n_blocks=1)
    np.testing.assert_allclose(out, [0.5**0.5, 0.5**0.5], rtol=1e-6)
    # Four blocks and inv-sqrt-blocks: alpha = 1/5, scale 1/sqrt(4) = 1/2, step 0.1:
    # h + 0.1 * (0.2, -0.2) = (0.62, 0.78), norm sqrt(0.9928) = 0.996393 -> (0.622245, 0.782822).
    cfg = NetworkConfig(
        width=2, activation="relu", norm="hyperspherical", residual_scale="inv-sqrt-blocks"
    )
    out = networks.residual_block(params, h, cfg, n_blocks=4)
    np.testing.assert_allclose(out, [0.622245, 0.782822], rtol=1e-5)
    # Without the skip the block returns its branch, on the sphere: (0.8, 0.6).
    cfg = NetworkConfig(width=2, activation="relu", norm="hyperspherical", residual=False)
    np.testing.assert_allclose(networks.residual_block(params, h, cfg, 1), [0.8, 0.6], rtol=1e-6)


def test_hyperspherical_tower_is_on_the_unit_sphere_after_input_and_every_block():
    cfg = NetworkConfig(width=16, norm="hyperspherical")
    tower = Tower(cfg, 16)
    params = tower.init(jax.random.key(1), X * 50)["params"]
    assert set(params[BLOCKS]) == {"kernel", "scaler", "alpha"}  # no biases, no LayerNorm
    h = networks.HypersphericalInput(16).apply({"params": params["input"]}, X * 50)
    np.testing.assert_allclose(jnp.linalg.norm(h, axis=-1), 1.0, rtol=1e-5)
    for i in range(4):
        block = jax.tree_util.tree_map(lambda p, i=i: p[i], params[BLOCKS])
        h = networks.residual_block(block, h, cfg, n_blocks=4)
        np.testing.assert_allclose(jnp.linalg.norm(h, axis=-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(tower.apply({"params": params}, X * 50), h, rtol=1e-5, atol=1e-6)


def test_residual_scale_is_one_over_sqrt_blocks():
    cfg = NetworkConfig(width=8, residual_scale="inv-sqrt-blocks")
    assert networks.residual_scale(cfg, 16) == 0.25  # depth 64: 16 blocks
    assert networks.residual_scale(cfg, 256) == 1 / 16  # depth 1024
    assert networks.residual_scale(NetworkConfig(), 256) == 1.0
    # The block adds scale * branch to its input: compare with the skip-free branch.
    params = jax.tree_util.tree_map(lambda p: p[0], _tower_params(cfg, 4)[BLOCKS])
    h = jax.random.normal(jax.random.key(2), (3, 8))
    branch = networks.residual_block(params, h, NetworkConfig(width=8, residual=False), 16)
    out = networks.residual_block(params, h, cfg, 16)
    np.testing.assert_allclose(out, h + 0.25 * branch, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("norm", ["layernorm", "hyperspherical"])
def test_switches_combine_with_depth_1024_and_remat(norm):
    cfg = NetworkConfig(width=4, norm=norm, residual_scale="inv-sqrt-blocks", remat="on")
    tower = Tower(cfg, 1024)
    params = tower.init(jax.random.key(3), X)["params"]
    assert params[BLOCKS]["kernel"].shape == (256, 4, 4, 4)
    loss = lambda p: jnp.sum(tower.apply({"params": p}, X) ** 2)
    value, grads = jax.jit(jax.value_and_grad(loss))(params)
    assert np.isfinite(float(value))
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree_util.tree_leaves(grads))


def test_bad_switch_values_are_one_line_naming_the_valid_ones():
    for field, value, valid in (
        ("norm", "batchnorm", "layernorm, hyperspherical"),
        ("residual_scale", "half", "none, inv-sqrt-blocks"),
    ):
        with pytest.raises(ValueError) as err:
            NetworkConfig(**{field: value})
        assert str(err.value) == f"unknown {field} {value!r}; valid: {valid}"
    with pytest.raises(ValueError, match="needs tower 'residual'"):
        NetworkConfig(tower="mlp", norm="hyperspherical")


@pytest.mark.parametrize(
    "flag,value,valid",
    [
        ("--norm", "batchnorm", "'layernorm', 'hyperspherical'"),
        ("--residual-scale", "half", "'none', 'inv-sqrt-blocks'"),
        ("--energy", "quasi", "'mrn'"),
    ],
)
def test_unknown_switch_on_the_command_line_names_the_valid_ones(flag, value, valid):
    from click.testing import CliRunner
    from crlkit.cli.main import cli

    result = CliRunner().invoke(cli, ["online", flag, value])
    assert result.exit_code == 2
    error = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(error) == 1 and repr(value) in error[0] and valid in error[0], result.output
