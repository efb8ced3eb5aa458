"""Helpers several test modules share (pytest puts this folder on sys.path: import them with
`from conftest import ...`)."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from crlkit.learner import Batch, Dims

# A `crlkit online` run small enough for a test: pointmaze-medium, 4 envs, width 16, depth 4.
TINY_ONLINE_FLAGS = (
    "--env pointmaze-medium --num-envs 4 --unroll-length 8 --batch-size 16 --updates-per-step 2 "
    "--width 16 --depth 4 --replay-steps-per-env 32 --eval-episodes 2 --eval-episodes-per-task 1 "
    "--prefill-steps 0"
).split()


def random_batch(key: jax.Array, dims: Dims, b: int = 16, squash: Callable = jnp.tanh) -> Batch:
    """A minibatch of `b` Gaussian states whose goals lie near their own goal slice (the first
    goal_dim entries), actions squashed into [-1, 1] by `squash`; the actor sees the same goals."""
    ks = jax.random.split(key, 3)
    state = jax.random.normal(ks[0], (b, dims.state_dim))
    goal = state[:, : dims.goal_dim] + 0.1 * jax.random.normal(ks[1], (b, dims.goal_dim))
    action = squash(jax.random.normal(ks[2], (b, dims.action_dim)))
    return Batch(state=state, action=action, goal=goal, actor_goal=goal)


def assert_trees_equal(a, b) -> None:
    """Same structure and bit-equal leaves (PRNG keys compared by their data)."""
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        if hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        assert type(x) is type(y) or isinstance(y, jax.Array)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
