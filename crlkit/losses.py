"""Energies, contrastive critic losses and actor/alpha losses. Each loss returns (loss, metrics).

Energies compare representations phi(s, a) [B, D] with psi(g) [B, D]. `energy_matrix` gives the
B x B matrix f(s_i, a_i, g_j) the contrastive losses consume (diagonal = positive pairs);
`energy_pairs` gives the B matched values f(s_i, a_i, g_i) the actor maximises. Either can be
divided by sqrt(D) (`scale=True`, OGBench's phi.psi / sqrt(512)). A critic ensemble stacks its
matrices [E, B, B]: `ensemble_contrastive_loss` averages the loss and metrics over E.

`mrn` is the quasimetric of Metric Residual Networks (Liu et al. 2023): the representation's
first half is compared symmetrically, its second half asymmetrically,
f = -(||phi_sym - psi_sym||_2 + max_k max(0, phi_asym_k - psi_asym_k)), so f(x, y) != f(y, x).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

# Added under the square root of the L2 energy: keeps the gradient finite where the distance is 0.
L2_EPS = 1e-6
# Data actions are pulled this far inside (-1, 1) before atanh in the behaviour-cloning log-prob.
ACTION_CLIP = 1.0 - 1e-4

Metrics = dict[str, jax.Array]


def squared_distances(a: jax.Array, b: jax.Array) -> jax.Array:
    """All-pairs squared distances [Ba, Bb] in Gram form |a|^2 + |b|^2 - 2ab, clamped at 0.

    One [Ba, D] x [D, Bb] matmul instead of a [Ba, Bb, D] broadcast; float rounding can make the
    Gram form slightly negative, hence the clamp.
    """
    sq = jnp.sum(a * a, -1)[:, None] + jnp.sum(b * b, -1)[None, :] - 2.0 * a @ b.T
    return jnp.maximum(sq, 0.0)


def squared_distances_broadcast(a: jax.Array, b: jax.Array) -> jax.Array:
    """The same matrix by a [Ba, Bb, D] broadcast (the reference's way; used as a test twin)."""
    return jnp.sum((a[:, None, :] - b[None, :, :]) ** 2, -1)


def _safe_norm(sq: jax.Array) -> jax.Array:
    return jnp.sqrt(sq + L2_EPS)


def _normalize(x: jax.Array) -> jax.Array:
    return x / jnp.sqrt(jnp.sum(x * x, -1, keepdims=True) + L2_EPS)


def energy_matrix(phi: jax.Array, psi: jax.Array, energy: str, scale: bool = False) -> jax.Array:
    """f(s_i, a_i, g_j) for all i, j: [B, B] logits (higher = more likely to reach).

    With `scale`, divided by sqrt(D), D the representation size.
    """
    logits = _energy_matrix(phi, psi, energy)
    return logits / jnp.sqrt(float(phi.shape[-1])) if scale else logits


def _energy_matrix(phi: jax.Array, psi: jax.Array, energy: str) -> jax.Array:
    if energy == "l2":
        return -_safe_norm(squared_distances(phi, psi))
    if energy == "l2_squared":
        return -squared_distances(phi, psi)
    if energy == "l1":
        # No Gram form exists for L1: this one is a [B, B, D] broadcast.
        return -jnp.sum(jnp.abs(phi[:, None, :] - psi[None, :, :]), -1)
    if energy == "dot":
        return phi @ psi.T
    if energy == "cosine":
        return _normalize(phi) @ _normalize(psi).T
    if energy == "mrn":
        (phi_sym, phi_asym), (psi_sym, psi_asym) = _halves(phi), _halves(psi)
        # The asymmetric part has no Gram form: a [B, B, D/2] broadcast, as l1.
        asym = jnp.max(jax.nn.relu(phi_asym[:, None, :] - psi_asym[None, :, :]), -1)
        return -(_safe_norm(squared_distances(phi_sym, psi_sym)) + asym)
    raise ValueError(f"unknown energy {energy!r}")


def _halves(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """MRN's split of a representation: (symmetric half, asymmetric half)."""
    half = x.shape[-1] // 2
    return x[..., :half], x[..., half:]


def energy_pairs(phi: jax.Array, psi: jax.Array, energy: str, scale: bool = False) -> jax.Array:
    """f(s_i, a_i, g_i) for matched rows: [B]; equals the diagonal of `energy_matrix`."""
    values = _energy_pairs(phi, psi, energy)
    return values / jnp.sqrt(float(phi.shape[-1])) if scale else values


def _energy_pairs(phi: jax.Array, psi: jax.Array, energy: str) -> jax.Array:
    if energy == "l2":
        return -_safe_norm(jnp.sum((phi - psi) ** 2, -1))
    if energy == "l2_squared":
        return -jnp.sum((phi - psi) ** 2, -1)
    if energy == "l1":
        return -jnp.sum(jnp.abs(phi - psi), -1)
    if energy == "dot":
        return jnp.sum(phi * psi, -1)
    if energy == "cosine":
        return jnp.sum(_normalize(phi) * _normalize(psi), -1)
    if energy == "mrn":
        (phi_sym, phi_asym), (psi_sym, psi_asym) = _halves(phi), _halves(psi)
        asym = jnp.max(jax.nn.relu(phi_asym - psi_asym), -1)
        return -(_safe_norm(jnp.sum((phi_sym - psi_sym) ** 2, -1)) + asym)
    raise ValueError(f"unknown energy {energy!r}")


def _logit_metrics(logits: jax.Array) -> Metrics:
    b = logits.shape[0]
    eye = jnp.eye(b, dtype=bool)
    diag = jnp.diagonal(logits)
    return {
        "categorical_accuracy": jnp.mean(jnp.argmax(logits, axis=1) == jnp.arange(b)),
        "logits_pos": jnp.mean(diag),
        "logits_neg": jnp.sum(jnp.where(eye, 0.0, logits)) / max(b * (b - 1), 1),
        "logsumexp": jnp.mean(jax.nn.logsumexp(logits, axis=1)),
    }


def _infonce(logits: jax.Array, logsumexp_coef: float) -> tuple[jax.Array, jax.Array]:
    """Row-wise InfoNCE (positive on the diagonal) and its logsumexp penalty."""
    lse = jax.nn.logsumexp(logits, axis=1)
    ce = jnp.mean(lse - jnp.diagonal(logits))
    return ce, logsumexp_coef * jnp.mean(lse**2)


def contrastive_loss(
    logits: jax.Array, loss: str, logsumexp_coef: float
) -> tuple[jax.Array, Metrics]:
    """Critic loss over the B x B energy matrix.

    fwd_infonce: each row i (state-action) picks its goal i among the batch's goals;
    bwd_infonce: each column j (goal) picks its state-action j; sym_infonce: the mean of both.
    InfoNCE losses add `logsumexp_coef * mean(logsumexp^2)` (over the same axis). binary_nce:
    sigmoid cross-entropy with the diagonal labelled 1 and the rest 0, averaged over B x B
    (OGBench's CRL loss; no penalty).
    """
    if loss == "fwd_infonce":
        ce, penalty = _infonce(logits, logsumexp_coef)
    elif loss == "bwd_infonce":
        ce, penalty = _infonce(logits.T, logsumexp_coef)
    elif loss == "sym_infonce":
        ce_f, pen_f = _infonce(logits, logsumexp_coef)
        ce_b, pen_b = _infonce(logits.T, logsumexp_coef)
        ce, penalty = 0.5 * (ce_f + ce_b), 0.5 * (pen_f + pen_b)
    elif loss == "binary_nce":
        labels = jnp.eye(logits.shape[0], dtype=logits.dtype)
        ce = jnp.mean(optax.sigmoid_binary_cross_entropy(logits, labels))
        penalty = jnp.zeros(())
    else:
        raise ValueError(f"unknown contrastive loss {loss!r}")
    total = ce + penalty
    return total, {"critic_loss": total, "logsumexp_penalty": penalty, **_logit_metrics(logits)}


def ensemble_contrastive_loss(
    logits: jax.Array, loss: str, logsumexp_coef: float
) -> tuple[jax.Array, Metrics]:
    """`contrastive_loss` of each critic's [B, B] matrix in `logits` [E, B, B], averaged over E."""
    total, metrics = jax.vmap(lambda m: contrastive_loss(m, loss, logsumexp_coef))(logits)
    return jnp.mean(total), {k: jnp.mean(v) for k, v in metrics.items()}


def gaussian_log_prob(mean: jax.Array, log_std: jax.Array, action: jax.Array) -> jax.Array:
    """log N(action; mean, exp(log_std)^2), summed over the action axis (no squashing)."""
    z = (action - mean) / jnp.exp(log_std)
    return jnp.sum(-0.5 * z**2 - log_std - 0.5 * jnp.log(2.0 * jnp.pi), -1)


def gaussian_sample(
    mean: jax.Array, log_std: jax.Array, key: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """OGBench's Gaussian actor: clip(mean + std * eps, -1, 1), log-prob of the unclipped sample."""
    eps = jax.random.normal(key, mean.shape, mean.dtype)
    gauss = -0.5 * eps**2 - log_std - 0.5 * jnp.log(2.0 * jnp.pi)
    return jnp.clip(mean + jnp.exp(log_std) * eps, -1.0, 1.0), jnp.sum(gauss, -1)


def tanh_gaussian_sample(
    mean: jax.Array, log_std: jax.Array, key: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Reparameterised action tanh(mean + std * eps) [.., A] and its tanh-corrected log-prob."""
    eps = jax.random.normal(key, mean.shape, mean.dtype)
    pre = mean + jnp.exp(log_std) * eps
    gauss = -0.5 * eps**2 - log_std - 0.5 * jnp.log(2.0 * jnp.pi)
    return jnp.tanh(pre), jnp.sum(gauss - _log_tanh_jacobian(pre), -1)


def _log_tanh_jacobian(pre: jax.Array) -> jax.Array:
    # log(1 - tanh(x)^2) = 2 * (log 2 - x - softplus(-2x)), stable for large |x|.
    return 2.0 * (jnp.log(2.0) - pre - jax.nn.softplus(-2.0 * pre))


def tanh_gaussian_log_prob(mean: jax.Array, log_std: jax.Array, action: jax.Array) -> jax.Array:
    """log pi(action) of a tanh-Gaussian for a given action in [-1, 1] (clipped inside first)."""
    pre = jnp.arctanh(jnp.clip(action, -ACTION_CLIP, ACTION_CLIP))
    z = (pre - mean) / jnp.exp(log_std)
    gauss = -0.5 * z**2 - log_std - 0.5 * jnp.log(2.0 * jnp.pi)
    return jnp.sum(gauss - _log_tanh_jacobian(pre), -1)


def sac_actor_loss(
    log_prob: jax.Array, q: jax.Array, alpha: jax.Array
) -> tuple[jax.Array, Metrics]:
    """mean(alpha * log pi(a|s,g) - Q(s,a,g)) with alpha held fixed."""
    alpha = jax.lax.stop_gradient(alpha)
    loss = jnp.mean(alpha * log_prob - q)
    return loss, {"actor_loss": loss, "entropy": -jnp.mean(log_prob), "q_mean": jnp.mean(q)}


def alpha_loss(
    log_alpha: jax.Array, log_prob: jax.Array, target_entropy: float
) -> tuple[jax.Array, Metrics]:
    """alpha * (entropy - target): alpha rises when the policy's entropy falls below the target."""
    entropy_gap = jax.lax.stop_gradient(-log_prob - target_entropy)
    loss = jnp.mean(jnp.exp(log_alpha) * entropy_gap)
    return loss, {"alpha_loss": loss, "alpha": jnp.exp(log_alpha)}


def ddpg_bc_actor_loss(
    q: jax.Array, data_log_prob: jax.Array, bc_alpha: float
) -> tuple[jax.Array, Metrics]:
    """OGBench's offline actor loss: -Q / stopgrad(mean|Q|) - bc_alpha * log pi(a_data)."""
    q_loss = -jnp.mean(q) / jax.lax.stop_gradient(jnp.mean(jnp.abs(q)) + 1e-6)
    bc_loss = -bc_alpha * jnp.mean(data_log_prob)
    loss = q_loss + bc_loss
    return loss, {
        "actor_loss": loss,
        "actor_q_loss": q_loss,
        "actor_bc_loss": bc_loss,
        "bc_log_prob": jnp.mean(data_log_prob),
        "q_mean": jnp.mean(q),
    }
