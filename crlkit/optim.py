"""The learner's optimizer: Adam as an optax transformation whose update takes a keep-flag.

`guarded_adam(lr)` is `optax.adam(lr)` (same formulas, same `optax.ScaleByAdamState`), except that
`update(grads, state, params, keep=flag)` applies the step only where `flag` is true: every output
is one elementwise select between its new and its old value, and the step is computed from the
*selected* moments. XLA then fuses each leaf's step into one in-place pass over the donated state,
so a skipped (non-finite) update needs no second copy of the optimizer state (`optax.adam`
followed by a select, or `optax.apply_if_finite`, holds the new and the old moments at once).

`make_optimizer(lr, schedule, clip_norm, num_updates)` composes it with the learning-rate
schedules and gradient clipping the CLI offers:

    tx = make_optimizer(3e-4, "cosine", clip_norm=1.0, num_updates=state.num_updates)
    updates, opt_state = tx.update(grads, opt_state, params, keep=ok)
    params = optax.apply_updates(params, updates)       # or `apply(tx, ...)` below

A schedule reads Adam's own count, which only kept updates advance, so a skipped update moves
the schedule no more than it moves the parameters. The horizon `num_updates` may be a traced
array (the learner keeps it in its state, so a run's compiled program does not depend on its
budget).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from crlkit.checks import check_choice
from crlkit.config import LR_SCHEDULES

WARMUP_FRACTION = 0.05  # linear-warmup: the rate rises over this share of the run's updates
# optax.adam's defaults.
ADAM_B1, ADAM_B2, ADAM_EPS = 0.9, 0.999, 1e-8

Schedule = Callable[[jax.Array], jax.Array]


def guarded_adam(
    learning_rate: float | Schedule,
    b1: float = ADAM_B1,
    b2: float = ADAM_B2,
    eps: float = ADAM_EPS,
) -> optax.GradientTransformationExtraArgs:
    """`optax.adam(learning_rate)` whose update takes `keep` (a [] bool, or None: always keep).

    With `keep` false the returned updates are zero and the state comes back unchanged; when
    not kept, the discarded branch may divide by zero (count 0) and the select drops it. A
    schedule is called with the count of kept updates before this one, as optax.adam calls it.
    """

    def init(params: Any) -> optax.ScaleByAdamState:
        return optax.scale_by_adam(b1, b2, eps).init(params)

    def update(grads, state: optax.ScaleByAdamState, params=None, *, keep=None, **extra):
        del params, extra
        if keep is None:
            select = lambda new, old: new
        else:
            select = lambda new, old: jnp.where(keep, new, old)
        lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
        count = select(optax.safe_increment(state.count), state.count)
        mu = jax.tree.map(lambda g, m: select((1 - b1) * g + b1 * m, m), grads, state.mu)
        nu = jax.tree.map(lambda g, v: select((1 - b2) * (g * g) + b2 * v, v), grads, state.nu)
        c1, c2 = 1 - b1**count, 1 - b2**count

        def step(m: jax.Array, v: jax.Array) -> jax.Array:
            direction = (m / c1.astype(m.dtype)) / (jnp.sqrt(v / c2.astype(v.dtype)) + eps)
            return select(-lr * direction, jnp.zeros_like(direction))

        updates = jax.tree.map(step, mu, nu)
        return updates, optax.ScaleByAdamState(count=count, mu=mu, nu=nu)

    return optax.GradientTransformationExtraArgs(init, update)


def schedule(name: str, learning_rate: float, num_updates: Any = None) -> float | Schedule:
    """The learning rate as a function of the kept-update count (a float for "constant").

    cosine: from `learning_rate` down to 0 at `num_updates` (optax.cosine_decay_schedule);
    linear-warmup: from 0 up to `learning_rate` over the first WARMUP_FRACTION of `num_updates`
    (at least one update), then constant (optax.warmup_constant_schedule from 0). `num_updates`
    may be traced; None or 0 (no horizon known) keeps the constant rate.
    """
    check_choice("lr_schedule", name, LR_SCHEDULES)
    if name == "constant":
        return learning_rate

    def rate(count: jax.Array) -> jax.Array:
        total = jnp.asarray(0 if num_updates is None else num_updates, jnp.float32)
        horizon = jnp.maximum(total, 1.0)
        if name == "cosine":
            cosine = 0.5 * (1 + jnp.cos(jnp.pi * jnp.minimum(count, horizon) / horizon))
            scheduled = learning_rate * cosine
        else:
            warmup = jnp.maximum(jnp.round(WARMUP_FRACTION * horizon), 1.0)
            scheduled = learning_rate * jnp.minimum(count / warmup, 1.0)
        return jnp.where(total > 0, scheduled, learning_rate)

    return rate


def make_optimizer(
    learning_rate: float,
    lr_schedule: str = "constant",
    clip_norm: float | None = None,
    num_updates: Any = None,
) -> optax.GradientTransformationExtraArgs:
    """Guarded Adam on a schedule, after clipping the gradient's global norm to `clip_norm`.

    With the defaults this is `guarded_adam(learning_rate)` itself (state
    `optax.ScaleByAdamState`); with clipping, `optax.chain(clip_by_global_norm, guarded_adam)`
    (clipping is stateless, so a skipped update changes nothing there either).
    """
    adam = guarded_adam(schedule(lr_schedule, learning_rate, num_updates))
    if clip_norm is None:
        return adam
    return optax.chain(optax.clip_by_global_norm(clip_norm), adam)


def apply(
    tx: optax.GradientTransformationExtraArgs, params: Any, opt_state: Any, grads: Any, keep=None
) -> tuple[Any, Any]:
    """(params, opt_state) after one step of `tx`, kept only where `keep` (None: always)."""
    updates, opt_state = tx.update(grads, opt_state, params, keep=keep)
    return optax.apply_updates(params, updates), opt_state
