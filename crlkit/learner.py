"""The one CRL learner the online and offline loops share.

`update(nets, cfg, state, batch)` is pure and contains no `jax.jit`: callers jit it (usually inside
a scan over minibatches) and donate `state`. Static things, the flax modules in `Networks` and the
config, never ride in the `CRLState` pytree; optimizers are rebuilt from the config inside `update`
(cheap, and it keeps closures out of the pytree).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from crlkit import losses
from crlkit.config import LearnerConfig
from crlkit.networks import Actor, Encoder

Params = Any


@dataclasses.dataclass(frozen=True)
class Dims:
    """Input sizes of the networks, derived from an env or dataset spec (never stored in config)."""

    state_dim: int
    goal_dim: int
    action_dim: int

    def __post_init__(self) -> None:
        for name in ("state_dim", "goal_dim", "action_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


@flax.struct.dataclass
class Batch:
    """One minibatch: critic goals `goal` and actor goals `actor_goal` (online: the same array)."""

    state: jax.Array  # [B, state_dim]
    action: jax.Array  # [B, action_dim], in [-1, 1]
    goal: jax.Array  # [B, goal_dim]
    actor_goal: jax.Array  # [B, goal_dim]


@flax.struct.dataclass
class TrainState:
    """Parameters and their Adam state."""

    params: Params
    opt_state: optax.OptState


@flax.struct.dataclass
class CRLState:
    """Everything `update` changes: critic {phi, psi}, actor, log alpha, step counter, RNG key."""

    critic: TrainState
    actor: TrainState
    alpha: TrainState  # params: {"log_alpha": scalar}
    step: jax.Array
    key: jax.Array


@dataclasses.dataclass(frozen=True)
class Networks:
    """The static flax modules (never in a pytree)."""

    actor: Actor
    phi: Encoder  # phi(state, action)
    psi: Encoder  # psi(goal)


def make_networks(cfg: LearnerConfig, dims: Dims, unrolled: bool = False) -> Networks:
    """Build the three towers; `unrolled=True` is the Python-loop twin (tests and benchmarks)."""
    net = cfg.network
    return Networks(
        actor=Actor(net, dims.action_dim, unrolled=unrolled),
        phi=Encoder(net, unrolled=unrolled),
        psi=Encoder(net, unrolled=unrolled),
    )


def _optimizers(cfg: LearnerConfig) -> tuple[optax.GradientTransformation, ...]:
    return optax.adam(cfg.critic_lr), optax.adam(cfg.actor_lr), optax.adam(cfg.alpha_lr)


def _train_state(params: Params, tx: optax.GradientTransformation) -> TrainState:
    return TrainState(params=params, opt_state=tx.init(params))


def init(nets: Networks, cfg: LearnerConfig, dims: Dims, key: jax.Array) -> CRLState:
    """Fresh parameters and optimizer states; log alpha starts at 0."""
    k_phi, k_psi, k_actor, k_state = jax.random.split(key, 4)
    s = jnp.zeros((1, dims.state_dim), jnp.float32)
    a = jnp.zeros((1, dims.action_dim), jnp.float32)
    g = jnp.zeros((1, dims.goal_dim), jnp.float32)
    critic_params = {
        "phi": nets.phi.init(k_phi, s, a)["params"],
        "psi": nets.psi.init(k_psi, g)["params"],
    }
    actor_params = nets.actor.init(k_actor, s, g)["params"]
    critic_tx, actor_tx, alpha_tx = _optimizers(cfg)
    return CRLState(
        critic=_train_state(critic_params, critic_tx),
        actor=_train_state(actor_params, actor_tx),
        alpha=_train_state({"log_alpha": jnp.zeros((), jnp.float32)}, alpha_tx),
        step=jnp.zeros((), jnp.int32),
        key=k_state,
    )


def _apply(ts: TrainState, grads: Params, tx: optax.GradientTransformation) -> TrainState:
    updates, opt_state = tx.update(grads, ts.opt_state, ts.params)
    return TrainState(params=optax.apply_updates(ts.params, updates), opt_state=opt_state)


def _q(nets: Networks, cfg: LearnerConfig, critic_params: Params, s, a, g) -> jax.Array:
    phi = nets.phi.apply({"params": critic_params["phi"]}, s, a)
    psi = nets.psi.apply({"params": critic_params["psi"]}, g)
    return losses.energy_pairs(phi, psi, cfg.energy)


def actor_loss_fn(
    actor_params: Params,
    nets: Networks,
    cfg: LearnerConfig,
    critic_params: Params,
    log_alpha: jax.Array,
    batch: Batch,
    key: jax.Array,
) -> tuple[jax.Array, tuple[losses.Metrics, jax.Array]]:
    """Actor loss (sac or ddpg_bc); aux = (metrics, log-probs of the sampled actions)."""
    mean, log_std = nets.actor.apply({"params": actor_params}, batch.state, batch.actor_goal)
    action, log_prob = losses.tanh_gaussian_sample(mean, log_std, key)
    if cfg.actor_loss == "sac":
        q = _q(nets, cfg, critic_params, batch.state, action, batch.actor_goal)
        loss, metrics = losses.sac_actor_loss(log_prob, q, jnp.exp(log_alpha))
        return loss, (metrics, log_prob)
    # ddpg_bc: Q of the deterministic action, plus likelihood of the data action.
    q = _q(nets, cfg, critic_params, batch.state, jnp.tanh(mean), batch.actor_goal)
    data_log_prob = losses.tanh_gaussian_log_prob(mean, log_std, batch.action)
    loss, metrics = losses.ddpg_bc_actor_loss(q, data_log_prob, cfg.bc_alpha)
    return loss, ({**metrics, "entropy": -jnp.mean(log_prob)}, log_prob)


def critic_loss_fn(
    critic_params: Params, nets: Networks, cfg: LearnerConfig, batch: Batch
) -> tuple[jax.Array, losses.Metrics]:
    """Contrastive loss of phi(s, a) against psi(g) over the batch."""
    phi = nets.phi.apply({"params": critic_params["phi"]}, batch.state, batch.action)
    psi = nets.psi.apply({"params": critic_params["psi"]}, batch.goal)
    logits = losses.energy_matrix(phi, psi, cfg.energy)
    return losses.contrastive_loss(logits, cfg.contrastive_loss, cfg.logsumexp_coef)


def update(
    nets: Networks, cfg: LearnerConfig, state: CRLState, batch: Batch
) -> tuple[CRLState, losses.Metrics]:
    """One SGD step: actor and alpha, then the critic, on one minibatch. Pure; jit it outside."""
    critic_tx, actor_tx, alpha_tx = _optimizers(cfg)
    key, actor_key = jax.random.split(state.key)
    log_alpha = state.alpha.params["log_alpha"]

    (_, (actor_metrics, log_prob)), actor_grads = jax.value_and_grad(actor_loss_fn, has_aux=True)(
        state.actor.params, nets, cfg, state.critic.params, log_alpha, batch, actor_key
    )
    actor = _apply(state.actor, actor_grads, actor_tx)

    alpha = state.alpha
    if cfg.actor_loss == "sac":
        target_entropy = -cfg.target_entropy_scale * batch.action.shape[-1]
        (_, alpha_metrics), alpha_grads = jax.value_and_grad(
            lambda p: losses.alpha_loss(p["log_alpha"], log_prob, target_entropy), has_aux=True
        )(alpha.params)
        alpha = _apply(alpha, alpha_grads, alpha_tx)
    else:
        alpha_metrics = {"alpha": jnp.exp(log_alpha)}

    (_, critic_metrics), critic_grads = jax.value_and_grad(critic_loss_fn, has_aux=True)(
        state.critic.params, nets, cfg, batch
    )
    critic = _apply(state.critic, critic_grads, critic_tx)

    new_state = state.replace(critic=critic, actor=actor, alpha=alpha, step=state.step + 1, key=key)
    return new_state, {**critic_metrics, **actor_metrics, **alpha_metrics}


def update_if_finite(
    nets: Networks, cfg: LearnerConfig, state: CRLState, batch: Batch, bad_step: jax.Array
) -> tuple[CRLState, jax.Array, losses.Metrics, jax.Array]:
    """`update`, kept only while training is finite (what both training loops run).

    The update is discarded (state unchanged, metrics zeroed) when its metrics or new parameters
    are not finite, or when an earlier one was not (`bad_step >= 0`).

    Returns:
      (state, bad_step, metrics, ok): bad_step is the first non-finite SGD step (1-based; -1 while
      none was), ok is 1.0 when this update was kept, else 0.0.
    """
    new, metrics = update(nets, cfg, state, batch)
    trained = (metrics, new.critic.params, new.actor.params, new.alpha.params)
    ok = (bad_step < 0) & jnp.all(
        jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(trained)])
    )
    state = jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, state)
    bad_step = jnp.where((bad_step < 0) & ~ok, state.step + 1, bad_step)
    okf = ok.astype(jnp.float32)
    return state, bad_step, {k: v * okf for k, v in metrics.items()}, okf


def act(
    nets: Networks,
    actor_params: Params,
    obs_state: jax.Array,
    goal: jax.Array,
    key: jax.Array,
    deterministic: bool,
) -> jax.Array:
    """Action in [-1, 1] for any leading batch shape: tanh(mean) or a tanh-Gaussian sample."""
    mean, log_std = nets.actor.apply({"params": actor_params}, obs_state, goal)
    if deterministic:
        return jnp.tanh(mean)
    action, _ = losses.tanh_gaussian_sample(mean, log_std, key)
    return action
