"""The CRL update: eager == jitted, it learns, it compiles once; config checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import random_batch

from crlkit.config import (
    CONTRASTIVE_LOSSES,
    ENERGIES,
    LearnerConfig,
    NetworkConfig,
    from_dict,
    to_dict,
)
from crlkit.learner import Batch, CRLState, Dims, act, init, make_networks, update

DIMS = Dims(state_dim=5, goal_dim=2, action_dim=3)
SMALL = NetworkConfig(width=32)
METRICS = (
    "critic_loss",
    "categorical_accuracy",
    "logits_pos",
    "logits_neg",
    "logsumexp",
    "actor_loss",
    "alpha",
    "entropy",
)


def _setup(**cfg_kwargs):
    cfg = LearnerConfig(network=cfg_kwargs.pop("network", SMALL), **cfg_kwargs)
    nets = make_networks(cfg, DIMS)
    return cfg, nets, init(nets, cfg, DIMS, jax.random.key(0))


@pytest.fixture(scope="module")
def default_learner():
    """(cfg, nets, fresh state, jitted update) for the default config; compiled once per module."""
    cfg, nets, state = _setup()
    return cfg, nets, state, jax.jit(lambda s, b: update(nets, cfg, s, b))


def test_update_eager_equals_jitted_and_reports_metrics(default_learner):
    cfg, nets, state, step = default_learner
    batch = random_batch(jax.random.key(1), DIMS, b=16)
    eager_state, eager_metrics = update(nets, cfg, state, batch)
    jit_state, jit_metrics = step(state, batch)
    for name in METRICS:
        assert eager_metrics[name].shape == ()
        np.testing.assert_allclose(eager_metrics[name], jit_metrics[name], rtol=1e-4, atol=1e-5)
    for a, b in zip(
        jax.tree_util.tree_leaves(eager_state), jax.tree_util.tree_leaves(jit_state), strict=True
    ):
        if jnp.issubdtype(a.dtype, jnp.floating):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert int(jit_state.step) == 1
    # Every parameter group moved.
    for part in ("critic", "actor", "alpha"):
        before = jax.tree_util.tree_leaves(getattr(state, part).params)
        after = jax.tree_util.tree_leaves(getattr(jit_state, part).params)
        assert any(not np.allclose(x, y) for x, y in zip(before, after, strict=True))


def test_critic_loss_decreases_on_a_small_batch(default_learner):
    _, _, state, step = default_learner
    batch = random_batch(jax.random.key(2), DIMS, b=16)
    state, first = step(state, batch)
    first = jax.device_get(first)
    for _ in range(60):
        state, last = step(state, batch)
    assert float(last["critic_loss"]) < 0.7 * float(first["critic_loss"])
    assert float(last["categorical_accuracy"]) > float(first["categorical_accuracy"]) + 0.3
    assert float(last["logits_pos"]) > float(last["logits_neg"])


def test_update_compiles_once_across_steps():
    cfg, nets, state = _setup()
    traces = []

    def counted(s: CRLState, b: Batch):
        traces.append(1)  # runs only while tracing
        return update(nets, cfg, s, b)

    step = jax.jit(counted, donate_argnums=0)
    for i in range(4):
        state, metrics = step(state, random_batch(jax.random.key(10 + i), DIMS, b=16))
    jax.block_until_ready(metrics)
    assert len(traces) == 1


@pytest.mark.parametrize("energy", ENERGIES)
@pytest.mark.parametrize("loss", CONTRASTIVE_LOSSES)
def test_every_energy_and_loss_traces_to_scalar_metrics(energy, loss):
    # Tracing only (no compile): the numbers themselves are checked in test_losses.py.
    cfg, nets, state = _setup(network=NetworkConfig(width=8), energy=energy, contrastive_loss=loss)
    new_state, metrics = jax.eval_shape(
        lambda s, b: update(nets, cfg, s, b), state, random_batch(jax.random.key(3), DIMS, b=4)
    )
    assert all(m.shape == () for m in metrics.values()) and set(METRICS) <= set(metrics)
    assert jax.tree_util.tree_structure(new_state) == jax.tree_util.tree_structure(state)


def test_ddpg_bc_uses_actor_goals_and_keeps_alpha_fixed():
    cfg, nets, state = _setup(actor_loss="ddpg_bc", bc_alpha=0.5)
    batch = random_batch(jax.random.key(4), DIMS, b=16)
    step = jax.jit(lambda s, b: update(nets, cfg, s, b))
    new_state, metrics = step(state, batch)
    assert float(new_state.alpha.params["log_alpha"]) == 0.0
    assert {"actor_q_loss", "actor_bc_loss", "entropy"} <= set(metrics)
    assert float(metrics["bc_alpha"]) == 0.5 and "alpha" not in metrics  # the weight in force
    # The actor sees actor_goal: changing it changes the actor loss, not the critic loss.
    other = batch.replace(actor_goal=batch.actor_goal + 3.0)
    _, other_metrics = step(state, other)
    assert float(other_metrics["actor_loss"]) != float(metrics["actor_loss"])
    np.testing.assert_allclose(other_metrics["critic_loss"], metrics["critic_loss"])


def test_sac_alpha_moves_toward_target_entropy(default_learner):
    # d alpha_loss / d log_alpha = alpha * (entropy - target): above the target entropy alpha
    # falls, below it alpha rises (Adam's first step moves log alpha by -lr * sign of that).
    cfg, _, state, step = default_learner
    new_state, metrics = step(state, random_batch(jax.random.key(5), DIMS, b=16))
    target = -cfg.target_entropy_scale * DIMS.action_dim
    gap = float(metrics["entropy"]) - target
    np.testing.assert_allclose(
        float(new_state.alpha.params["log_alpha"]), -cfg.alpha_lr * np.sign(gap), rtol=1e-3
    )


def test_act_is_deterministic_or_sampled(default_learner):
    _, nets, state, _ = default_learner
    s, g = jnp.ones((7, DIMS.state_dim)), jnp.zeros((7, DIMS.goal_dim))
    a = act(nets, state.actor.params, s, g, jax.random.key(0), deterministic=True)
    b = act(nets, state.actor.params, s, g, jax.random.key(1), deterministic=True)
    c = act(nets, state.actor.params, s, g, jax.random.key(1), deterministic=False)
    assert a.shape == (7, DIMS.action_dim)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c) and bool(jnp.all(jnp.abs(c) <= 1.0))


@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        ({"critic_depth": 6}, "6"),
        ({"actor_depth": 0}, "multiple of 4"),
        ({"width": 0}, "width"),
        ({"activation": "tanh"}, "swish, relu, gelu"),
    ],
)
def test_network_config_rejects_bad_values(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment) as err:
        NetworkConfig(**kwargs)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        ({"energy": "l3"}, "l2, l2_squared, l1, dot, cosine"),
        ({"contrastive_loss": "nce"}, "fwd_infonce"),
        ({"actor_loss": "td3"}, "sac, ddpg_bc"),
        ({"critic_lr": 0.0}, "critic.lr"),  # named as its flag, --critic-lr
    ],
)
def test_learner_config_rejects_bad_values(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        LearnerConfig(**kwargs)
    with pytest.raises(ValueError, match="state_dim"):
        Dims(0, 2, 3)


def test_config_round_trips_through_dict():
    cfg = LearnerConfig(network=NetworkConfig(critic_depth=8, remat="on"), energy="dot")
    assert from_dict(LearnerConfig, to_dict(cfg)) == cfg
