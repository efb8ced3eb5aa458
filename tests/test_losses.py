"""Energies and losses against small hand-worked examples (the numbers are in the comments)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from crlkit import losses
from crlkit.config import ENERGIES

# 2x2 logits used below: L = [[log 3, 0], [log 2, 0]].
L = jnp.array([[math.log(3.0), 0.0], [math.log(2.0), 0.0]])


def test_gram_l2_matches_hand_distances_and_broadcast():
    # a0=(0,0), a1=(1,0); b0=(3,4), b1=(1,0): squared distances [[25, 1], [20, 0]].
    a = jnp.array([[0.0, 0.0], [1.0, 0.0]])
    b = jnp.array([[3.0, 4.0], [1.0, 0.0]])
    np.testing.assert_allclose(losses.squared_distances(a, b), [[25, 1], [20, 0]], atol=1e-5)
    # l2 energy = -sqrt(d^2 + eps): [[-5, -1], [-sqrt(20), -sqrt(eps)]]
    expected = [[-5.0, -1.0], [-math.sqrt(20.0), -math.sqrt(losses.L2_EPS)]]
    np.testing.assert_allclose(losses.energy_matrix(a, b, "l2"), expected, rtol=1e-5, atol=1e-6)

    x = jax.random.normal(jax.random.key(0), (33, 16))
    y = jax.random.normal(jax.random.key(1), (33, 16))
    np.testing.assert_allclose(
        losses.squared_distances(x, y),
        losses.squared_distances_broadcast(x, y),
        rtol=1e-4,
        atol=1e-4,
    )


def test_l2_gradient_is_finite_at_zero_distance():
    # phi == psi makes every diagonal distance exactly 0 (and Gram rounding can go negative).
    x = jax.random.normal(jax.random.key(2), (8, 4)) * 10
    grads = jax.grad(lambda a, b: jnp.sum(losses.energy_matrix(a, b, "l2")), (0, 1))(x, x)
    pair_grads = jax.grad(lambda a: jnp.sum(losses.energy_pairs(a, x, "l2")))(x)
    for g in (*grads, pair_grads):
        assert bool(jnp.all(jnp.isfinite(g)))
    np.testing.assert_allclose(pair_grads, 0.0, atol=1e-6)


def test_other_energies_by_hand():
    a = jnp.array([[1.0, 2.0]])
    b = jnp.array([[3.0, 0.0], [0.0, -1.0]])
    # l1: |1-3| + |2-0| = 4; |1-0| + |2+1| = 4
    np.testing.assert_allclose(losses.energy_matrix(a, b, "l1"), [[-4.0, -4.0]])
    # l2_squared: 4 + 4 = 8; 1 + 9 = 10
    np.testing.assert_allclose(losses.energy_matrix(a, b, "l2_squared"), [[-8.0, -10.0]], atol=1e-5)
    # dot: 3; -2
    np.testing.assert_allclose(losses.energy_matrix(a, b, "dot"), [[3.0, -2.0]])
    # cosine: 3 / (sqrt 5 * 3) = 0.447214; -2 / sqrt 5 = -0.894427
    np.testing.assert_allclose(
        losses.energy_matrix(a, b, "cosine"), [[0.447214, -0.894427]], rtol=1e-5
    )


def test_mrn_energy_by_hand_is_asymmetric():
    # Rows are [sym | asym] halves of size 2.
    # phi0 = [0, 0 | 1, 0], phi1 = [3, 4 | 0, 2]; psi0 = [0, 0 | 0, 0], psi1 = [0, 0 | 2, 1].
    # f = -(sqrt(||sym diff||^2 + eps) + max(0, max_k(phi_asym_k - psi_asym_k))), e = sqrt(eps):
    # (0,0): -(e + max(0, 1, 0)) = -(e + 1)      (0,1): -(e + max(0, -1, -1)) = -e
    # (1,0): -(5 + max(0, 0, 2)) = -7            (1,1): -(5 + max(0, -2, 1)) = -6
    phi = jnp.array([[0.0, 0.0, 1.0, 0.0], [3.0, 4.0, 0.0, 2.0]])
    psi = jnp.array([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 2.0, 1.0]])
    e = math.sqrt(losses.L2_EPS)
    expected = [[-(e + 1.0), -e], [-7.0, -6.0]]
    np.testing.assert_allclose(losses.energy_matrix(phi, psi, "mrn"), expected, rtol=1e-6)
    np.testing.assert_allclose(losses.energy_pairs(phi, psi, "mrn"), [-(e + 1.0), -6.0], rtol=1e-6)
    # Swapping the arguments: (0,0) becomes -(e + max(0, 0 - 1, 0 - 0)) = -e, not -(e + 1).
    swapped = losses.energy_matrix(psi, phi, "mrn")
    np.testing.assert_allclose(swapped[0, 0], -e, rtol=1e-6)
    assert not np.allclose(swapped, np.transpose(expected))


def test_mrn_needs_an_even_representation():
    from crlkit.config import LearnerConfig, NetworkConfig

    with pytest.raises(ValueError, match="needs it even, got 63"):
        LearnerConfig(energy="mrn", network=NetworkConfig(repr_dim=63))
    with pytest.raises(ValueError, match="unknown energy 'mrm'; valid: .*cosine, mrn"):
        LearnerConfig(energy="mrm")


@pytest.mark.parametrize("energy", ENERGIES)
def test_energy_pairs_is_the_diagonal(energy):
    x = jax.random.normal(jax.random.key(3), (6, 5))
    y = jax.random.normal(jax.random.key(4), (6, 5))
    np.testing.assert_allclose(
        losses.energy_pairs(x, y, energy),
        jnp.diagonal(losses.energy_matrix(x, y, energy)),
        rtol=1e-4,
        atol=1e-4,
    )


def test_forward_infonce_by_hand():
    # rows: lse0 = log(3 + 1) = log 4, lse1 = log(2 + 1) = log 3
    # CE = mean(log4 - log3, log3 - 0) = log 4 / 2 = 0.693147
    # penalty = 0.1 * mean(log4^2, log3^2) = 0.1 * (1.921812 + 1.206949) / 2 = 0.156438
    loss, m = losses.contrastive_loss(L, "fwd_infonce", 0.1)
    np.testing.assert_allclose(loss, 0.693147 + 0.156438, rtol=1e-5)
    np.testing.assert_allclose(m["logsumexp_penalty"], 0.156438, rtol=1e-5)
    # row 0 picks column 0 (right), row 1 picks column 0 (wrong): accuracy 1/2
    np.testing.assert_allclose(m["categorical_accuracy"], 0.5)
    np.testing.assert_allclose(m["logits_pos"], (math.log(3) + 0) / 2, rtol=1e-6)  # 0.549306
    np.testing.assert_allclose(m["logits_neg"], (0 + math.log(2)) / 2, rtol=1e-6)  # 0.346574
    np.testing.assert_allclose(m["logsumexp"], (math.log(4) + math.log(3)) / 2, rtol=1e-6)


def test_backward_and_symmetric_infonce_by_hand():
    # columns: lse0 = log(3 + 2) = log 5, lse1 = log(1 + 1) = log 2
    # CE = mean(log5 - log3, log2 - 0) = (0.510826 + 0.693147) / 2 = 0.601986
    # penalty = 0.1 * (log5^2 + log2^2) / 2 = 0.1 * (2.590290 + 0.480453) / 2 = 0.153537
    bwd, _ = losses.contrastive_loss(L, "bwd_infonce", 0.1)
    np.testing.assert_allclose(bwd, 0.601986 + 0.153537, rtol=1e-5)
    # symmetric = mean of forward (0.849585) and backward (0.755523) = 0.802554
    sym, _ = losses.contrastive_loss(L, "sym_infonce", 0.1)
    np.testing.assert_allclose(sym, 0.802554, rtol=1e-5)


def test_binary_nce_by_hand():
    # M = [[log3, log3], [0, 0]], labels = identity.
    # diagonal: -log sigmoid(log3) = log(4/3) = 0.287682; -log sigmoid(0) = log 2 = 0.693147
    # off-diagonal: -log(1 - sigmoid(log3)) = log 4 = 1.386294; -log(1 - sigmoid(0)) = 0.693147
    # mean over the 4 entries = 3.060271 / 4 = 0.765068 (no logsumexp penalty)
    m = jnp.array([[math.log(3.0), math.log(3.0)], [0.0, 0.0]])
    loss, metrics = losses.contrastive_loss(m, "binary_nce", 0.1)
    np.testing.assert_allclose(loss, 0.765068, rtol=1e-5)
    np.testing.assert_allclose(metrics["logsumexp_penalty"], 0.0)


def test_tanh_gaussian_log_prob_by_hand_and_matches_sampler():
    # 1-D, mean 0, log_std 0, action tanh(0.5):
    # Gaussian log-density at 0.5: -0.125 - 0.918939 = -1.043939
    # tanh correction: -log(1 - tanh(0.5)^2) = 2 log cosh(0.5) = +0.240229  ->  -0.803710
    lp = losses.tanh_gaussian_log_prob(
        jnp.zeros((1, 1)), jnp.zeros((1, 1)), jnp.tanh(jnp.full((1, 1), 0.5))
    )
    np.testing.assert_allclose(lp, [-0.803710], rtol=1e-5)

    mean = jax.random.normal(jax.random.key(5), (64, 3)) * 0.5
    log_std = jnp.full((64, 3), -0.5)
    action, sample_lp = losses.tanh_gaussian_sample(mean, log_std, jax.random.key(6))
    np.testing.assert_allclose(
        losses.tanh_gaussian_log_prob(mean, log_std, action), sample_lp, rtol=1e-3, atol=1e-3
    )


def test_sac_actor_and_alpha_losses_by_hand():
    log_prob, q = jnp.array([1.0, -1.0]), jnp.array([2.0, 0.0])
    # mean(0.5 * 1 - 2, 0.5 * -1 - 0) = mean(-1.5, -0.5) = -1.0; entropy = -mean(log_prob) = 0
    loss, m = losses.sac_actor_loss(log_prob, q, jnp.array(0.5))
    np.testing.assert_allclose(loss, -1.0)
    np.testing.assert_allclose(m["entropy"], 0.0)
    # target entropy -2: gap = -log_prob + 2 = [1, 3], mean 2; alpha = e^0 = 1 -> loss 2.
    # d loss / d log_alpha = 2 > 0: entropy above target, so descent lowers alpha.
    a_loss, am = losses.alpha_loss(jnp.array(0.0), log_prob, -2.0)
    np.testing.assert_allclose(a_loss, 2.0)
    np.testing.assert_allclose(
        jax.grad(lambda la: losses.alpha_loss(la, log_prob, -2.0)[0])(0.0), 2.0
    )
    np.testing.assert_allclose(am["alpha"], 1.0)


def test_ddpg_bc_actor_loss_by_hand():
    # q = [2, -4]: -mean(q) / mean|q| = 1 / 3; bc: -0.5 * mean([1, 3]) = -1.0; total -0.666667
    loss, m = losses.ddpg_bc_actor_loss(jnp.array([2.0, -4.0]), jnp.array([1.0, 3.0]), 0.5)
    np.testing.assert_allclose(loss, 1 / 3 - 1.0, rtol=1e-5)
    np.testing.assert_allclose(m["actor_q_loss"], 1 / 3, rtol=1e-5)
    # The Q scale is a constant: the gradient w.r.t. q is -1 / (B * mean|q|) = -1/6 per entry.
    g = jax.grad(lambda q: losses.ddpg_bc_actor_loss(q, jnp.zeros(2), 0.5)[0])(
        jnp.array([2.0, -4.0])
    )
    np.testing.assert_allclose(g, [-1 / 6, -1 / 6], rtol=1e-5)


def test_scaled_dot_energy_by_hand():
    a = jnp.array([[1.0, 2.0]])
    b = jnp.array([[3.0, 0.0], [0.0, -1.0]])
    # dot [3, -2] divided by sqrt(D) = sqrt 2: [2.121320, -1.414214]
    np.testing.assert_allclose(
        losses.energy_matrix(a, b, "dot", scale=True), [[2.121320, -1.414214]], rtol=1e-5
    )
    # matched pair (a0, b0): 3 / sqrt 2
    np.testing.assert_allclose(losses.energy_pairs(a, b[:1], "dot", scale=True), [2.121320], 1e-5)


def test_ensemble_loss_is_the_mean_over_critics_by_hand():
    # Binary NCE of L = [[log3, 0], [log2, 0]]: diagonal log(4/3) = 0.287682 and log 2 = 0.693147;
    # off-diagonal -log(1 - 1/2) = 0.693147 and -log(1 - 2/3) = log 3 = 1.098612;
    # mean = 2.772589 / 4 = 0.693147. M (test above) gives 0.765068. Two critics: 0.729108.
    m = jnp.array([[math.log(3.0), math.log(3.0)], [0.0, 0.0]])
    loss, metrics = losses.ensemble_contrastive_loss(jnp.stack([L, m]), "binary_nce", 0.1)
    np.testing.assert_allclose(loss, 0.729108, rtol=1e-5)
    np.testing.assert_allclose(metrics["critic_loss"], 0.729108, rtol=1e-5)
    # logits_pos: L's (log3 + 0) / 2 = 0.549306 and M's (log3 + 0) / 2: mean 0.549306
    np.testing.assert_allclose(metrics["logits_pos"], 0.549306, rtol=1e-5)
    # One critic: the ensemble loss is that critic's loss.
    single, _ = losses.ensemble_contrastive_loss(L[None], "fwd_infonce", 0.1)
    np.testing.assert_allclose(single, 0.693147 + 0.156438, rtol=1e-5)


def test_gaussian_log_prob_by_hand():
    # mean (0, 1), std 1, action (0.5, -1): z = (0.5, -2)
    # -0.125 - 0.918939 = -1.043939 and -2 - 0.918939 = -2.918939; sum -3.962877
    lp = losses.gaussian_log_prob(
        jnp.array([[0.0, 1.0]]), jnp.zeros((1, 2)), jnp.array([[0.5, -1]])
    )
    np.testing.assert_allclose(lp, [-3.962877], rtol=1e-5)
    # std 2, action 1 from mean 0: z = 0.5: -0.125 - log 2 - 0.918939 = -1.737086
    lp2 = losses.gaussian_log_prob(
        jnp.zeros((1, 1)), jnp.full((1, 1), math.log(2.0)), jnp.ones((1, 1))
    )
    np.testing.assert_allclose(lp2, [-1.737086], rtol=1e-5)


def test_gaussian_sample_is_clipped_and_scored_before_clipping():
    mean, log_std = jnp.array([[5.0, -5.0, 0.2]]), jnp.zeros((1, 3))
    key = jax.random.key(7)
    eps = jax.random.normal(key, mean.shape)
    action, lp = losses.gaussian_sample(mean, log_std, key)
    # |eps| < 4 here, so the first two land outside [-1, 1] and are clipped to +-1.
    assert float(jnp.max(jnp.abs(eps))) < 4.0
    np.testing.assert_allclose(action[0, :2], [1.0, -1.0])
    np.testing.assert_allclose(action[0, 2], jnp.clip(0.2 + eps[0, 2], -1, 1), rtol=1e-6)
    np.testing.assert_allclose(lp, losses.gaussian_log_prob(mean, log_std, mean + eps), rtol=1e-6)
