"""The non-finite guard keeps one copy of the state; remat auto (Adam itself: test_optim.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_trees_equal, random_batch

from crlkit.config import LearnerConfig, NetworkConfig
from crlkit.learner import Dims, init, make_networks, update, update_if_finite
from crlkit.networks import resolve_remat

DIMS = Dims(state_dim=5, goal_dim=2, action_dim=3)


def _setup(width=16, depth=4):
    cfg = LearnerConfig(network=NetworkConfig(width=width, critic_depth=depth, actor_depth=depth))
    nets = make_networks(cfg, DIMS)
    return cfg, nets, init(nets, cfg, DIMS, jax.random.key(0))


def test_guard_keeps_finite_updates_and_skips_from_the_first_bad_one():
    cfg, nets, state = _setup()
    guarded = jax.jit(lambda s, b, bad: update_if_finite(nets, cfg, s, b, bad))
    plain = jax.jit(lambda s, b: update(nets, cfg, s, b))
    good = random_batch(jax.random.key(1), DIMS, b=8)
    no_bad = jnp.asarray(-1, jnp.int32)

    kept, bad, metrics, ok = guarded(state, good, no_bad)
    want, want_metrics = plain(state, good)
    assert int(bad) == -1 and float(ok) == 1.0 and int(kept.step) == 1
    for a, b in zip(jax.tree_util.tree_leaves(kept), jax.tree_util.tree_leaves(want), strict=True):
        if jnp.issubdtype(a.dtype, jnp.floating):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(metrics["critic_loss"], want_metrics["critic_loss"], rtol=1e-5)

    # SGD step 2 sees a NaN: nothing changes (bit for bit), it is reported as step 2.
    nan_batch = good.replace(state=good.state.at[0, 0].set(jnp.nan))
    skipped, bad, metrics, ok = guarded(kept, nan_batch, bad)
    assert int(bad) == 2 and float(ok) == 0.0
    assert all(float(v) == 0.0 for v in metrics.values())
    assert_trees_equal(skipped, kept)
    # Later finite batches are skipped too: training stopped at step 2.
    after, bad, _, ok = guarded(skipped, good, bad)
    assert int(bad) == 2 and float(ok) == 0.0
    assert_trees_equal(after, kept)


def test_guard_needs_no_second_copy_of_the_state():
    # XLA's own accounting of the compiled, state-donating step: the guard's scratch memory stays
    # within that of the bare update. Selecting between a finished new state and the old one
    # (the previous guard) needed about one more state's worth here (9.8 MB against 6.0 MB).
    cfg, nets, state = _setup(width=128, depth=16)
    batch, bad = random_batch(jax.random.key(2), DIMS, b=64), jnp.asarray(-1, jnp.int32)

    def temp_mb(fn):
        compiled = jax.jit(fn, donate_argnums=0).lower(state, batch, bad).compile()
        stats = compiled.memory_analysis()
        return stats.temp_size_in_bytes / 2**20, stats.alias_size_in_bytes / 2**20

    bare, _ = temp_mb(lambda s, b, k: update(nets, cfg, s, b))
    guarded, aliased = temp_mb(lambda s, b, k: update_if_finite(nets, cfg, s, b, k))
    state_mb = sum(x.nbytes for x in jax.tree_util.tree_leaves(state)) / 2**20
    assert guarded <= 1.05 * bare, (guarded, bare)
    assert aliased >= 0.99 * state_mb  # the donated state is updated in place


@pytest.mark.parametrize(
    "mode,depth,platform,expected",
    [
        ("auto", 4, "cpu", True),  # on a CPU remat is faster as well as smaller
        ("auto", 64, "gpu", False),
        ("auto", 256, "gpu", True),
        ("auto", 1024, "tpu", True),
        ("off", 1024, "cpu", False),
        ("on", 4, "gpu", True),
    ],
)
def test_remat_auto_rule(mode, depth, platform, expected):
    net = NetworkConfig(critic_depth=depth, actor_depth=4, remat=mode)
    assert resolve_remat(net, platform) is expected


def test_remat_is_auto_on_or_off_and_mlp_has_no_blocks():
    assert NetworkConfig().remat == "auto"
    with pytest.raises(ValueError, match="--remat must be text, got True"):
        NetworkConfig(remat=True)  # no boolean form (the package is unreleased: no old configs)
    mlp = NetworkConfig(tower="mlp", critic_depth=3, actor_depth=3, remat="on")
    assert resolve_remat(mlp, "cpu") is False
    with pytest.raises(ValueError, match="auto, on, off"):
        NetworkConfig(remat="sometimes")
