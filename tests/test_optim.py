"""crlkit.optim: guarded Adam == optax.adam, the keep-flag, clipping, schedules, the CLI flags."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from click.testing import CliRunner
from conftest import assert_trees_equal, random_batch

from crlkit import learner, optim
from crlkit.config import LearnerConfig, NetworkConfig
from crlkit.learner import Dims, init, make_networks, update, update_if_finite

DIMS = Dims(state_dim=5, goal_dim=2, action_dim=3)
PARAMS = {"w": jnp.array([[0.5, -1.0], [2.0, 0.0]]), "b": jnp.array([0.1, -0.2])}
GRADS = {"w": jnp.array([[1.0, -3.0], [0.5, 0.0]]), "b": jnp.array([-2.0, 0.25])}


def test_guarded_adam_equals_optax_adam_and_holds_when_not_kept():
    tx, ref = optim.guarded_adam(1e-2), optax.adam(1e-2)
    ours = jax.jit(lambda p, s, keep: optim.apply(tx, p, s, GRADS, keep))

    @jax.jit
    def theirs(p, s):
        updates, s = ref.update(GRADS, s, p)
        return optax.apply_updates(p, updates), s

    params, state = PARAMS, tx.init(PARAMS)
    want_params, want_state = PARAMS, ref.init(PARAMS)
    # Same state layout as optax: ScaleByAdamState(count, mu, nu), optax.adam's first state.
    assert jax.tree_util.tree_structure(state) == jax.tree_util.tree_structure(want_state[0])
    for _ in range(3):  # a few steps, so bias correction and moments both matter
        held = ours(params, state, jnp.asarray(False))
        assert_trees_equal(held, (params, state))
        params, state = ours(params, state, jnp.asarray(True))
        want_params, want_state = theirs(want_params, want_state)
        assert_trees_equal((params, state), (want_params, want_state[0]))


def test_not_kept_update_with_nan_gradients_changes_nothing():
    nan_grads = {"w": GRADS["w"].at[0, 1].set(jnp.nan), "b": GRADS["b"].at[0].set(jnp.inf)}
    for tx in (optim.guarded_adam(1e-2), optim.make_optimizer(1e-2, "cosine", 1.0, 10)):
        params, state = optim.apply(tx, PARAMS, tx.init(PARAMS), GRADS)  # count 1, moments set
        step = jax.jit(lambda p, s, tx=tx: optim.apply(tx, p, s, nan_grads, jnp.asarray(False)))
        assert_trees_equal(step(params, state), (params, state))
        # Also from a fresh state (count 0: the discarded branch divides by zero).
        fresh = tx.init(PARAMS)
        assert_trees_equal(step(PARAMS, fresh), (PARAMS, fresh))


def test_defaults_train_as_optax_adam_on_the_same_gradients():
    """learner.update with the default config == optax.adam(lr) per network on the gradients of
    the same state, for a few steps (parameters and Adam moments)."""
    cfg = LearnerConfig(network=NetworkConfig(width=16))
    nets = make_networks(cfg, DIMS)
    state = init(nets, cfg, DIMS, jax.random.key(0))
    step = jax.jit(lambda s, b: update(nets, cfg, s, b))

    @jax.jit
    def expected(s, b):
        grads, _, _ = learner._gradients(nets, cfg, s, b)
        out = {}
        for part, lr in (
            ("critic", cfg.critic_lr),
            ("actor", cfg.actor_lr),
            ("alpha", cfg.alpha_lr),
        ):
            ts = getattr(s, part)
            adam_state = (ts.opt_state, optax.EmptyState())  # optax.adam's chain state
            updates, adam_state = optax.adam(lr).update(grads[part], adam_state, ts.params)
            out[part] = (optax.apply_updates(ts.params, updates), adam_state[0])
        return out

    for i in range(3):
        batch = random_batch(jax.random.key(i + 1), DIMS, b=8)
        want = expected(state, batch)
        state, _ = step(state, batch)
        for part in ("critic", "actor", "alpha"):
            got = (getattr(state, part).params, getattr(state, part).opt_state)
            for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want[part]), strict=True):
                np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)
    assert int(state.step) == 3 and int(state.critic.opt_state.count) == 3


def test_clipping_scales_a_known_gradient_to_the_norm():
    # g = (3, 4) has norm 5: clipped to norm 1 it is (0.6, 0.8); Adam's first moment after one
    # step is (1 - b1) g = 0.1 g. A gradient under the norm, (0.3, 0.4) (norm 0.5), passes as is.
    tx = optim.make_optimizer(1e-3, clip_norm=1.0)
    params = {"a": jnp.zeros(2)}
    for g, mu in (((3.0, 4.0), (0.06, 0.08)), ((0.3, 0.4), (0.03, 0.04))):
        _, (_, adam) = optim.apply(tx, params, tx.init(params), {"a": jnp.asarray(g)})
        np.testing.assert_allclose(adam.mu["a"], mu, rtol=1e-6)
        np.testing.assert_allclose(adam.nu["a"], 0.001 * np.square(mu) / 0.01, rtol=1e-5)


def test_cosine_and_warmup_schedules_give_the_right_rate():
    lr = 1e-3
    cosine = optim.schedule("cosine", lr, 100)
    # lr * (1 + cos(pi t / 100)) / 2: t=0 -> lr, t=25 -> lr (1 + 0.7071) / 2, t=50 -> lr / 2,
    # t=100 and after -> 0.
    for t, want in ((0, 1e-3), (25, 0.85355339e-3), (50, 0.5e-3), (100, 0.0), (150, 0.0)):
        assert float(cosine(jnp.int32(t))) == pytest.approx(want, abs=1e-9)
        assert float(cosine(jnp.int32(t))) == pytest.approx(
            float(optax.cosine_decay_schedule(lr, 100)(t)), abs=1e-9
        )
    # 200 updates: warm up over round(0.05 * 200) = 10 of them, lr * t / 10, then lr.
    warmup = optim.schedule("linear-warmup", lr, 200)
    for t, want in ((0, 0.0), (1, 1e-4), (5, 5e-4), (10, 1e-3), (150, 1e-3)):
        assert float(warmup(jnp.int32(t))) == pytest.approx(want, abs=1e-9)
        ref = optax.warmup_constant_schedule(0.0, lr, 10)(t)
        assert float(warmup(jnp.int32(t))) == pytest.approx(float(ref), abs=1e-9)
    assert optim.schedule("constant", lr) == lr
    # Without a horizon (a state made only for its shapes) the rate stays constant.
    assert float(optim.schedule("cosine", lr)(jnp.int32(50))) == pytest.approx(lr, abs=1e-9)
    assert float(optim.schedule("linear-warmup", lr, 0)(jnp.int32(0))) == pytest.approx(lr)
    # The horizon may be traced (the learner keeps it in its state).
    traced = jax.jit(lambda t, n: optim.schedule("cosine", lr, n)(t))
    assert float(traced(jnp.int32(50), jnp.int32(100))) == pytest.approx(0.5e-3, abs=1e-9)
    with pytest.raises(ValueError, match="unknown lr_schedule 'step'; valid: constant, cosine"):
        optim.schedule("step", lr, 100)


def test_schedule_counts_kept_updates_only():
    # Warmup over 1 update (20 x 0.05): the first kept update runs at lr 0, the next at lr.
    tx = optim.make_optimizer(1e-2, "linear-warmup", num_updates=20)
    params, state = PARAMS, tx.init(PARAMS)
    params, state = optim.apply(tx, params, state, GRADS)
    assert_trees_equal(params, PARAMS)
    assert int(state.count) == 1
    skipped = optim.apply(tx, params, state, GRADS, jnp.asarray(False))
    assert int(skipped[1].count) == 1
    moved, _ = optim.apply(tx, *skipped, GRADS)
    assert not np.allclose(moved["w"], PARAMS["w"])


def test_learner_runs_a_cosine_schedule_to_zero_with_clipping():
    cfg = LearnerConfig(network=NetworkConfig(width=16), lr_schedule="cosine", grad_clip_norm=0.5)
    nets = make_networks(cfg, DIMS)
    state = init(nets, cfg, DIMS, jax.random.key(0), num_updates=2)
    step = jax.jit(lambda s, b, bad: update_if_finite(nets, cfg, s, b, bad))
    bad = jnp.asarray(-1, jnp.int32)
    for i in range(2):
        state, bad, _, ok = step(state, random_batch(jax.random.key(i), DIMS, b=8), bad)
        assert float(ok) == 1.0
    # The third update is past the horizon: lr 0, the parameters stay.
    after, bad, _, ok = step(state, random_batch(jax.random.key(9), DIMS, b=8), bad)
    assert float(ok) == 1.0 and int(after.step) == 3
    assert_trees_equal(after.actor.params, state.actor.params)
    assert_trees_equal(after.critic.params, state.critic.params)


@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        ({"lr_schedule": "step"}, "unknown lr_schedule 'step'; valid: constant, cosine"),
        ({"grad_clip_norm": 0.0}, "grad.clip.norm must be > 0"),
        ({"grad_clip_norm": "1"}, "grad.clip.norm must be a number"),
    ],
)
def test_bad_optimizer_settings_are_one_line_errors(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment) as err:
        LearnerConfig(**kwargs)
    assert "\n" not in str(err.value)


def test_online_cli_has_the_optimizer_flags():
    from crlkit.cli.main import cli
    from crlkit.cli.options import build_config

    out = CliRunner().invoke(cli, ["online", "--help"], terminal_width=200)
    assert out.exit_code == 0, out.output
    assert "--lr-schedule [constant|cosine|linear-warmup]" in out.output
    assert "--grad-clip-norm FLOAT" in out.output
    options = {"lr_schedule": "cosine", "grad_clip_norm": 2.5}
    cfg = build_config(LearnerConfig, options)
    assert (cfg.lr_schedule, cfg.grad_clip_norm) == ("cosine", 2.5)
    bad = CliRunner().invoke(cli, ["online", "--grad-clip-norm", "lots"])
    assert bad.exit_code == 2 and "lots" in bad.output
