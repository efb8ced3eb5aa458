"""The one CRL learner the online and offline loops share.

`update(nets, cfg, state, batch)` is pure and contains no `jax.jit`: callers jit it (usually inside
a scan over minibatches) and donate `state`. Static things, the flax modules in `Networks` and the
config, never ride in the `CRLState` pytree. Each network (critic, actor, log alpha) has its own
optimizer state, stepped by `crlkit.optim`'s guarded Adam (an optax transformation built from the
config inside `update`: cheap, and it keeps closures out of the pytree) on the configured
learning-rate schedule, after the configured gradient clipping.

With `num_critics == 1` the critic parameters are {"phi": ..., "psi": ...} as before ensembles
existed; with E > 1 every leaf gets a leading [E] axis (independent pairs, run with vmap).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from crlkit import losses, optim
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
    """Parameters and their optimizer state (`crlkit.optim.make_optimizer`'s)."""

    params: Params
    opt_state: optax.OptState


@flax.struct.dataclass
class CRLState:
    """Everything `update` changes: critic {phi, psi}, actor, log alpha, step counter, RNG key.

    `step` counts kept updates; `update_if_finite` leaves it (and everything else) unchanged when
    it skips one. `num_updates` is the number of SGD updates the run plans, the horizon of the
    cosine and linear-warmup learning-rate schedules (0 when not given; a state leaf, so the
    compiled update does not depend on the budget).
    """

    critic: TrainState
    actor: TrainState
    alpha: TrainState  # params: {"log_alpha": scalar}
    step: jax.Array
    key: jax.Array
    num_updates: jax.Array


@dataclasses.dataclass(frozen=True)
class Networks:
    """The static flax modules (never in a pytree)."""

    actor: Actor
    phi: Encoder  # phi(state, action)
    psi: Encoder  # psi(goal)


def make_networks(cfg: LearnerConfig, dims: Dims, unrolled: bool = False) -> Networks:
    """Build the three towers; `unrolled=True` is the Python-loop twin (tests and benchmarks)."""
    net = cfg.network
    const_std = cfg.actor_dist == "gaussian_const_std"
    return Networks(
        actor=Actor(net, dims.action_dim, unrolled=unrolled, const_std=const_std),
        phi=Encoder(net, unrolled=unrolled),
        psi=Encoder(net, unrolled=unrolled),
    )


def _optimizer(cfg: LearnerConfig, lr: float, num_updates: Any = None):
    """One network's optimizer: guarded Adam at `lr` on cfg's schedule, after cfg's clipping."""
    return optim.make_optimizer(lr, cfg.lr_schedule, cfg.grad_clip_norm, num_updates)


def _train_state(params: Params, cfg: LearnerConfig, lr: float) -> TrainState:
    return TrainState(params=params, opt_state=_optimizer(cfg, lr).init(params))


def init(
    nets: Networks, cfg: LearnerConfig, dims: Dims, key: jax.Array, num_updates: int | None = None
) -> CRLState:
    """Fresh parameters and optimizer states; log alpha starts at 0.

    `num_updates`: the SGD updates the run plans, the horizon of the cosine and linear-warmup
    learning-rate schedules (the training loops pass it). Without it (0) those schedules keep
    the constant rate: a state made only for its shapes (a checkpoint template) needs none.
    """
    k_phi, k_psi, k_actor, k_state = jax.random.split(key, 4)
    s = jnp.zeros((1, dims.state_dim), jnp.float32)
    a = jnp.zeros((1, dims.action_dim), jnp.float32)
    g = jnp.zeros((1, dims.goal_dim), jnp.float32)
    init_phi = lambda k: nets.phi.init(k, s, a)["params"]
    init_psi = lambda k: nets.psi.init(k, g)["params"]
    if cfg.num_critics == 1:
        critic_params = {"phi": init_phi(k_phi), "psi": init_psi(k_psi)}
    else:
        critic_params = {
            "phi": jax.vmap(init_phi)(jax.random.split(k_phi, cfg.num_critics)),
            "psi": jax.vmap(init_psi)(jax.random.split(k_psi, cfg.num_critics)),
        }
    actor_params = nets.actor.init(k_actor, s, g)["params"]
    log_alpha = {"log_alpha": jnp.zeros((), jnp.float32)}
    return CRLState(
        critic=_train_state(critic_params, cfg, cfg.critic_lr),
        actor=_train_state(actor_params, cfg, cfg.actor_lr),
        alpha=_train_state(log_alpha, cfg, cfg.alpha_lr),
        step=jnp.zeros((), jnp.int32),
        key=k_state,
        num_updates=jnp.asarray(num_updates or 0, jnp.int32),
    )


def _step(
    cfg: LearnerConfig, lr: float, ts: TrainState, grads: Params, num_updates, keep
) -> TrainState:
    """One optimizer step of one network, kept only where `keep` (None: always)."""
    tx = _optimizer(cfg, lr, num_updates)
    params, opt_state = optim.apply(tx, ts.params, ts.opt_state, grads, keep)
    return TrainState(params=params, opt_state=opt_state)


def critic_representations(
    nets: Networks, cfg: LearnerConfig, critic_params: Params, s, a, g
) -> tuple[jax.Array, jax.Array]:
    """phi(s, a) and psi(g) of every critic: [E, B, repr_dim] each (E = 1 without an ensemble)."""
    phi_fn = lambda p: nets.phi.apply({"params": p}, s, a)
    psi_fn = lambda p: nets.psi.apply({"params": p}, g)
    if cfg.num_critics == 1:
        return phi_fn(critic_params["phi"])[None], psi_fn(critic_params["psi"])[None]
    return jax.vmap(phi_fn)(critic_params["phi"]), jax.vmap(psi_fn)(critic_params["psi"])


def q_value(nets: Networks, cfg: LearnerConfig, critic_params: Params, s, a, g) -> jax.Array:
    """Q(s, a, g) [B] the actor maximises: the energy of matched pairs, min over the critics."""
    phi, psi = critic_representations(nets, cfg, critic_params, s, a, g)
    pairs = jax.vmap(lambda p, q: losses.energy_pairs(p, q, cfg.energy, cfg.scale_energy))
    return jnp.min(pairs(phi, psi), axis=0)


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
    const_std = nets.actor.const_std
    sample = losses.gaussian_sample if const_std else losses.tanh_gaussian_sample
    action, log_prob = sample(mean, log_std, key)
    if cfg.actor_loss == "sac":
        q = q_value(nets, cfg, critic_params, batch.state, action, batch.actor_goal)
        loss, metrics = losses.sac_actor_loss(log_prob, q, jnp.exp(log_alpha))
        return loss, (metrics, log_prob)
    # ddpg_bc: Q of the deterministic action, plus likelihood of the data action.
    q = q_value(nets, cfg, critic_params, batch.state, _mode(mean, const_std), batch.actor_goal)
    log_prob_fn = losses.gaussian_log_prob if const_std else losses.tanh_gaussian_log_prob
    data_log_prob = log_prob_fn(mean, log_std, batch.action)
    loss, metrics = losses.ddpg_bc_actor_loss(q, data_log_prob, cfg.bc_alpha)
    return loss, ({**metrics, "entropy": -jnp.mean(log_prob)}, log_prob)


def _mode(mean: jax.Array, const_std: bool) -> jax.Array:
    """The deterministic action: clip(mean, -1, 1) (OGBench's Gaussian) or tanh(mean)."""
    return jnp.clip(mean, -1.0, 1.0) if const_std else jnp.tanh(mean)


def critic_loss_fn(
    critic_params: Params, nets: Networks, cfg: LearnerConfig, batch: Batch
) -> tuple[jax.Array, losses.Metrics]:
    """Contrastive loss of phi(s, a) against psi(g) over the batch, averaged over the critics."""
    phi, psi = critic_representations(
        nets, cfg, critic_params, batch.state, batch.action, batch.goal
    )
    matrix = lambda p, q: losses.energy_matrix(p, q, cfg.energy, cfg.scale_energy)
    logits = jax.vmap(matrix)(phi, psi)
    return losses.ensemble_contrastive_loss(logits, cfg.contrastive_loss, cfg.logsumexp_coef)


def _gradients(
    nets: Networks, cfg: LearnerConfig, state: CRLState, batch: Batch
) -> tuple[dict[str, Params], losses.Metrics, jax.Array]:
    """Gradients of the actor, alpha (None unless sac) and critic losses, all at `state`.

    Returns (grads, metrics, next RNG key). The critic loss does not depend on the actor, and the
    actor loss holds the critic fixed, so every gradient can be taken before any step is applied.
    """
    key, actor_key = jax.random.split(state.key)
    log_alpha = state.alpha.params["log_alpha"]
    (_, (actor_metrics, log_prob)), actor_grads = jax.value_and_grad(actor_loss_fn, has_aux=True)(
        state.actor.params, nets, cfg, state.critic.params, log_alpha, batch, actor_key
    )
    alpha_grads = None
    if cfg.actor_loss == "sac":
        target_entropy = -cfg.target_entropy_scale * batch.action.shape[-1]
        (_, alpha_metrics), alpha_grads = jax.value_and_grad(
            lambda p: losses.alpha_loss(p["log_alpha"], log_prob, target_entropy), has_aux=True
        )(state.alpha.params)
    else:  # DDPG+BC has no entropy temperature: log the BC weight in force instead
        alpha_metrics = {"bc_alpha": jnp.asarray(cfg.bc_alpha, jnp.float32)}
    (_, critic_metrics), critic_grads = jax.value_and_grad(critic_loss_fn, has_aux=True)(
        state.critic.params, nets, cfg, batch
    )
    grads = {"critic": critic_grads, "actor": actor_grads, "alpha": alpha_grads}
    return grads, {**critic_metrics, **actor_metrics, **alpha_metrics}, key


def _apply_gradients(
    cfg: LearnerConfig,
    state: CRLState,
    grads: dict[str, Params],
    key: jax.Array,
    ok: jax.Array | None,
) -> CRLState:
    """Optimizer steps for actor, alpha and critic; with a flag `ok`, all of them only where ok."""
    alpha, horizon = state.alpha, state.num_updates
    if grads["alpha"] is not None:
        alpha = _step(cfg, cfg.alpha_lr, alpha, grads["alpha"], horizon, ok)
    if ok is not None:
        key = jnp.where(ok, key, state.key)
    return state.replace(
        critic=_step(cfg, cfg.critic_lr, state.critic, grads["critic"], horizon, ok),
        actor=_step(cfg, cfg.actor_lr, state.actor, grads["actor"], horizon, ok),
        alpha=alpha,
        step=state.step + (1 if ok is None else ok.astype(state.step.dtype)),
        key=key,
    )


def update(
    nets: Networks, cfg: LearnerConfig, state: CRLState, batch: Batch
) -> tuple[CRLState, losses.Metrics]:
    """One SGD step: actor and alpha, then the critic, on one minibatch. Pure; jit it outside."""
    grads, metrics, key = _gradients(nets, cfg, state, batch)
    return _apply_gradients(cfg, state, grads, key, None), metrics


def update_if_finite(
    nets: Networks, cfg: LearnerConfig, state: CRLState, batch: Batch, bad_step: jax.Array
) -> tuple[CRLState, jax.Array, losses.Metrics, jax.Array]:
    """`update`, skipped unless training is finite (what both training loops run).

    The update is skipped (state unchanged, metrics zeroed) when its losses/metrics or gradients
    are not finite, or when an earlier one was not (`bad_step >= 0`). The skip happens inside
    the optimizer step (`crlkit.optim.guarded_adam`'s keep-flag), so the old and the new state are
    never both held: finite gradients give finite Adam steps, so the new parameters need no check
    of their own.

    Returns:
      (state, bad_step, metrics, ok): bad_step is the first non-finite SGD step (1-based; -1 while
      none was), ok is 1.0 when this update was kept, else 0.0.
    """
    grads, metrics, key = _gradients(nets, cfg, state, batch)
    checked = jax.tree.leaves((metrics, grads))
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in checked]))
    ok = (bad_step < 0) & finite
    state = _apply_gradients(cfg, state, grads, key, ok)
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
    """Action in [-1, 1] for any leading batch shape: the mode or a sample of the actor.

    tanh-Gaussian: tanh(mean) or a tanh-Gaussian sample; constant-std Gaussian (OGBench):
    clip(mean, -1, 1) or clip(mean + eps, -1, 1).
    """
    mean, log_std = nets.actor.apply({"params": actor_params}, obs_state, goal)
    const_std = nets.actor.const_std
    if deterministic:
        return _mode(mean, const_std)
    sample = losses.gaussian_sample if const_std else losses.tanh_gaussian_sample
    return sample(mean, log_std, key)[0]
