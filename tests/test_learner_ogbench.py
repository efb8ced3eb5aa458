"""OGBench's CRL agent inside the one learner: presets, parameter count, ensemble, actor, config."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import random_batch
from crlkit.cli.options import build_config

from crlkit import losses
from crlkit.config import (
    LearnerConfig,
    NetworkConfig,
    from_dict,
    ogbench_crl_learner,
    paper_offline_learner,
    to_dict,
)
from crlkit.learner import Dims, act, init, make_networks, q_value, update
from crlkit.networks import MLPTower, count_params

# pointmaze: observation = qpos (2), action 2; OGBench's goals are full observations.
POINTMAZE = Dims(state_dim=2, goal_dim=2, action_dim=2)
# A small OGBench-shaped agent for the update tests (full-observation goals: goal_dim = state_dim).
FULL_OBS = Dims(state_dim=4, goal_dim=4, action_dim=2)


def _tiny_ogbench(**changes) -> LearnerConfig:
    cfg = ogbench_crl_learner(alpha=0.03)
    net = dataclasses.replace(cfg.network, width=16, repr_dim=8, critic_depth=2, actor_depth=2)
    return dataclasses.replace(cfg, network=net, **changes)


def CLIP(a):  # noqa: N802 - OGBench's dataset actions are clipped, not squashed
    return jnp.clip(a, -1, 1)


def test_ogbench_crl_parameter_count_matches_its_stated_layer_sizes():
    # OGBench CRL (get_config): value_hidden_dims = actor_hidden_dims = (512, 512, 512),
    # latent_dim 512, layer_norm on in phi/psi (after each hidden activation, not after the
    # latent layer), two critics; GCActor: MLP without LayerNorm, mean head Dense(A), const_std
    # so no log_std parameter. Pointmaze: S = G = 2 (full-observation goals), A = 2.
    s, g, a, w, d = 2, 2, 2, 512, 512
    dense = lambda i, o: i * o + o
    layer_norm = 2 * w  # scale + bias
    phi = dense(s + a, w) + 2 * dense(w, w) + 3 * layer_norm + dense(w, d)  # 793,600
    psi = dense(g, w) + 2 * dense(w, w) + 3 * layer_norm + dense(w, d)  # 792,576
    actor = dense(s + g, w) + 2 * dense(w, w) + dense(w, a)  # 528,898
    expected = 2 * (phi + psi) + actor
    assert expected == 3_701_250

    cfg = ogbench_crl_learner(alpha=0.03)
    nets = make_networks(cfg, POINTMAZE)
    shapes = jax.eval_shape(lambda k: init(nets, cfg, POINTMAZE, k), jax.random.key(0))
    assert count_params(shapes.critic.params) == 2 * (phi + psi)
    assert count_params(shapes.actor.params) == actor
    # Each critic leaf carries the ensemble axis.
    assert all(x.shape[0] == 2 for x in jax.tree_util.tree_leaves(shapes.critic.params))


def test_ogbench_preset_fields_and_paper_preset():
    cfg = ogbench_crl_learner(alpha=0.1)
    net = cfg.network
    assert (net.tower, net.width, net.critic_depth, net.actor_depth) == ("mlp", 512, 3, 3)
    assert (net.repr_dim, net.activation, net.layer_norm, net.actor_layer_norm) == (
        512,
        "gelu",
        True,
        False,
    )
    assert (cfg.num_critics, cfg.energy, cfg.scale_energy, cfg.contrastive_loss) == (
        2,
        "dot",
        True,
        "binary_nce",
    )
    assert (cfg.actor_loss, cfg.actor_dist, cfg.bc_alpha) == ("ddpg_bc", "gaussian_const_std", 0.1)
    assert cfg.actor_lr == cfg.critic_lr == 3e-4
    paper = paper_offline_learner(depth=16, alpha=0.1)
    assert paper.network == NetworkConfig(critic_depth=16, actor_depth=16)
    assert dataclasses.replace(paper, network=cfg.network) == cfg
    assert from_dict(LearnerConfig, to_dict(cfg)) == cfg


def test_flags_override_a_preset():
    options = {"depth": 8, "tower": "residual", "bc_alpha": 0.5, "energy": None}
    cfg = build_config(LearnerConfig, options, base=ogbench_crl_learner(alpha=0.03))
    assert (cfg.network.tower, cfg.network.critic_depth, cfg.bc_alpha) == ("residual", 8, 0.5)
    assert (cfg.num_critics, cfg.energy, cfg.network.width) == (2, "dot", 512)
    assert options == {}


def test_mlp_tower_is_dense_then_activation_then_layer_norm():
    # LayerNorm last: every output row has mean 0 and variance 1 (scale 1, bias 0 at init). Had
    # the activation come after the norm, gelu's outputs would not be centred.
    cfg = NetworkConfig(tower="mlp", width=8, critic_depth=2, actor_depth=2, activation="gelu")
    x = jax.random.normal(jax.random.key(0), (5, 3))
    params = MLPTower(cfg, 2).init(jax.random.key(1), x)["params"]
    assert sorted(params) == ["Dense_0", "Dense_1", "LayerNorm_0", "LayerNorm_1"]
    out = MLPTower(cfg, 2).apply({"params": params}, x)
    np.testing.assert_allclose(jnp.mean(out, -1), 0.0, atol=1e-5)
    np.testing.assert_allclose(jnp.var(out, -1), 1.0, rtol=1e-3)
    # Recomputed by hand from the parameters: gelu(x W + b), then normalise.
    h = x
    for i in range(2):
        h = jax.nn.gelu(h @ params[f"Dense_{i}"]["kernel"] + params[f"Dense_{i}"]["bias"])
        h = (h - h.mean(-1, keepdims=True)) / jnp.sqrt(h.var(-1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(out, h, rtol=1e-5, atol=1e-5)


def test_ensemble_critic_loss_and_actor_q_use_each_critic():
    cfg = _tiny_ogbench()
    nets = make_networks(cfg, FULL_OBS)
    state = init(nets, cfg, FULL_OBS, jax.random.key(0))
    batch = random_batch(jax.random.key(1), FULL_OBS, b=8, squash=CLIP)
    _, metrics = update(nets, cfg, state, batch)

    single = dataclasses.replace(cfg, num_critics=1)
    per_critic_loss, per_critic_q = [], []
    for e in range(2):
        params = jax.tree_util.tree_map(lambda p, e=e: p[e], state.critic.params)
        phi = nets.phi.apply({"params": params["phi"]}, batch.state, batch.action)
        psi = nets.psi.apply({"params": params["psi"]}, batch.goal)
        logits = losses.energy_matrix(phi, psi, "dot") / jnp.sqrt(8.0)
        per_critic_loss.append(losses.contrastive_loss(logits, "binary_nce", 0.0)[0])
        mean, _ = nets.actor.apply({"params": state.actor.params}, batch.state, batch.actor_goal)
        q_action = jnp.clip(mean, -1, 1)
        per_critic_q.append(q_value(nets, single, params, batch.state, q_action, batch.actor_goal))
    np.testing.assert_allclose(metrics["critic_loss"], np.mean(per_critic_loss), rtol=1e-5)
    q_min = jnp.minimum(*per_critic_q)
    np.testing.assert_allclose(metrics["q_mean"], jnp.mean(q_min), rtol=1e-5, atol=1e-6)
    assert not np.allclose(per_critic_q[0], per_critic_q[1])  # two independent critics


def test_constant_std_actor_bc_term_and_actions():
    cfg = _tiny_ogbench()
    nets = make_networks(cfg, FULL_OBS)
    state = init(nets, cfg, FULL_OBS, jax.random.key(2))
    batch = random_batch(jax.random.key(3), FULL_OBS, b=8, squash=CLIP)
    _, metrics = update(nets, cfg, state, batch)
    mean, log_std = nets.actor.apply({"params": state.actor.params}, batch.state, batch.actor_goal)
    np.testing.assert_array_equal(log_std, 0.0)
    # BC term: -alpha * mean log N(a_data; mean, 1), summed over the 2 action dims.
    log_prob = -0.5 * (batch.action - mean) ** 2 - 0.5 * jnp.log(2 * jnp.pi)
    np.testing.assert_allclose(
        metrics["actor_bc_loss"], -0.03 * jnp.mean(jnp.sum(log_prob, -1)), rtol=1e-5
    )
    big = jnp.full((3, FULL_OBS.state_dim), 50.0)
    det = act(nets, state.actor.params, big, big, None, deterministic=True)
    raw, _ = nets.actor.apply({"params": state.actor.params}, big, big)
    np.testing.assert_allclose(det, jnp.clip(raw, -1, 1))
    sampled = act(nets, state.actor.params, big, big, jax.random.key(4), deterministic=False)
    assert bool(jnp.all(jnp.abs(sampled) <= 1.0)) and not np.allclose(sampled, det)


def test_ogbench_agent_learns_with_full_observation_goals():
    cfg = _tiny_ogbench()
    nets = make_networks(cfg, FULL_OBS)
    state = init(nets, cfg, FULL_OBS, jax.random.key(5))
    step = jax.jit(lambda s, b: update(nets, cfg, s, b))
    batch = random_batch(jax.random.key(6), FULL_OBS, b=16, squash=CLIP)
    state, first = step(state, batch)
    first = jax.device_get(first)
    for _ in range(60):
        state, last = step(state, batch)
    assert float(last["critic_loss"]) < 0.7 * float(first["critic_loss"])
    assert float(last["logits_pos"]) > float(last["logits_neg"])
    assert float(last["categorical_accuracy"]) > float(first["categorical_accuracy"])


@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        ({"actor_dist": "beta"}, "tanh_gaussian, gaussian_const_std"),
        ({"actor_dist": "gaussian_const_std"}, "needs actor_loss 'ddpg_bc'"),
        ({"num_critics": 0}, "num.critics"),
    ],
)
def test_new_learner_options_reject_bad_values(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment) as err:
        LearnerConfig(**kwargs)
    assert "\n" not in str(err.value)


def test_tower_depth_rules():
    NetworkConfig(tower="mlp", critic_depth=3, actor_depth=3)  # any number of hidden layers
    with pytest.raises(ValueError, match="multiple of 4"):
        NetworkConfig(critic_depth=3)
    with pytest.raises(ValueError, match="hidden layers"):
        NetworkConfig(tower="mlp", critic_depth=0)
    with pytest.raises(ValueError, match="residual, mlp"):
        NetworkConfig(tower="transformer")


def test_defaults_are_unchanged_for_existing_users():
    cfg = LearnerConfig()
    assert (cfg.num_critics, cfg.scale_energy, cfg.actor_dist) == (1, False, "tanh_gaussian")
    assert (cfg.network.tower, cfg.network.actor_layer_norm) == ("residual", True)
