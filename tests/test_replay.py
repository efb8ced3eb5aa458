"""Replay ring buffer: insert/sample correctness, wrap-around, in-place writes, one compile."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from crlkit.data import replay

NUM_ENVS = 3
UNROLL = 4


def _example():
    return {"obs": jnp.zeros((2,), jnp.float32), "stamp": {"time": jnp.zeros((), jnp.int32)}}


def _chunk(first_step: int, length: int = UNROLL, num_envs: int = NUM_ENVS):
    """Steps first_step .. first_step + length - 1; obs encodes (time, env) to trace rows."""
    t = np.arange(first_step, first_step + length)[:, None] * np.ones((1, num_envs), np.int64)
    e = np.arange(num_envs)[None, :] * np.ones((length, 1), np.int64)
    obs = np.stack([t, 100 * e], axis=-1).astype(np.float32)
    return {"obs": jnp.asarray(obs), "stamp": {"time": jnp.asarray(t, jnp.int32)}}


def test_init_shapes_and_capacity_per_env():
    state = replay.init(_example(), num_envs=NUM_ENVS, capacity=31)
    assert state.rows_per_env == 10 and state.num_envs == NUM_ENVS  # 31 // 3
    assert state.data["obs"].shape == (10, NUM_ENVS, 2)
    assert state.data["stamp"]["time"].dtype == jnp.int32
    assert int(state.size) == 0 and int(state.insert_pos) == 0


def test_init_rejects_capacity_below_num_envs():
    with pytest.raises(ValueError, match="capacity 2 holds no step per env with num_envs=3"):
        replay.init(_example(), num_envs=3, capacity=2)


def test_insert_wraps_around_like_a_reference_ring():
    # T = 10 rows per env, chunks of 4: the 3rd, 5th and 8th chunks straddle the ring's end.
    state = replay.init(_example(), num_envs=NUM_ENVS, capacity=30)
    insert = jax.jit(replay.insert, donate_argnums=0)
    reference = np.zeros(10, np.int64)  # ring row -> time step stored there (0: unwritten)
    for c in range(8):
        state = insert(state, _chunk(UNROLL * c), jnp.zeros((UNROLL, NUM_ENVS), bool))
        for t in range(UNROLL * c, UNROLL * (c + 1)):
            reference[t % 10] = t
        stored_time = np.asarray(state.data["stamp"]["time"])
        np.testing.assert_array_equal(stored_time, reference[:, None] * np.ones((1, NUM_ENVS)))
        assert int(state.insert_pos) == (UNROLL * (c + 1)) % 10
        assert int(state.size) == min(UNROLL * (c + 1), 10)
    obs = np.asarray(state.data["obs"])
    np.testing.assert_array_equal(obs[..., 0], reference[:, None] * np.ones((1, NUM_ENVS)))
    np.testing.assert_array_equal(
        obs[..., 1], 100 * np.arange(NUM_ENVS)[None, :] * np.ones((10, 1))
    )


def test_episode_ids_count_done_flags_per_env():
    state = replay.init(_example(), num_envs=2, capacity=16)
    done = np.zeros((UNROLL, 2), bool)
    done[1, 0] = True  # env 0: steps 0-1 episode 0, steps 2-3 episode 1
    done[3, 1] = True  # env 1: its done ends the chunk, so the next chunk starts episode 1
    state = replay.insert(state, _chunk(0, num_envs=2), jnp.asarray(done))
    state = replay.insert(state, _chunk(4, num_envs=2), jnp.zeros((UNROLL, 2), bool))
    np.testing.assert_array_equal(
        np.asarray(state.episode_id[:8]).T, [[0, 0, 1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1, 1, 1]]
    )
    np.testing.assert_array_equal(np.asarray(state.next_episode_id), [1, 1])


def test_insert_touches_only_the_chunk_and_updates_in_place():
    # Fill the ring with noise first, so a roll or a whole-buffer rewrite would show.
    state = replay.init(_example(), num_envs=NUM_ENVS, capacity=30)
    noise = np.random.default_rng(0).normal(size=(10, NUM_ENVS, 2)).astype(np.float32)
    state = state.replace(
        data={**state.data, "obs": jnp.asarray(noise)},
        insert_pos=jnp.int32(8),  # the chunk wraps: rows 8, 9, 0, 1
        size=jnp.int32(10),
    )
    insert = jax.jit(replay.insert, donate_argnums=0)
    pointer = state.data["obs"].unsafe_buffer_pointer()
    state = insert(state, _chunk(50), jnp.zeros((UNROLL, NUM_ENVS), bool))
    obs = np.asarray(state.data["obs"])
    np.testing.assert_array_equal(obs[2:8], noise[2:8])  # untouched rows, bit for bit
    np.testing.assert_array_equal(
        obs[[8, 9, 0, 1], :, 0], np.arange(50, 54)[:, None] * np.ones((1, 3))
    )
    # XLA wrote into the donated buffer: no copy of the ring was made.
    assert state.data["obs"].unsafe_buffer_pointer() == pointer


def test_insert_and_sample_compile_once():
    traces = {"insert": 0, "sample": 0}

    def counted_insert(state, chunk, done):
        traces["insert"] += 1
        return replay.insert(state, chunk, done)

    def counted_sample(state, key):
        traces["sample"] += 1
        return replay.sample(state, key, 8)

    insert = jax.jit(counted_insert, donate_argnums=0)
    sample = jax.jit(counted_sample)
    state = replay.init(_example(), num_envs=NUM_ENVS, capacity=30)
    key = jax.random.key(0)
    for c in range(7):  # fill levels 4..10 and positions that wrap
        done = jnp.asarray(np.random.default_rng(c).random((UNROLL, NUM_ENVS)) < 0.3)
        state = insert(state, _chunk(UNROLL * c), done)
        sample(state, jax.random.fold_in(key, c))
    assert traces == {"insert": 1, "sample": 1}


def test_sample_reads_only_written_rows_and_goals_stay_in_episode():
    # Stamps written by the test (time and an episode number it tracks itself) check the buffer's
    # bookkeeping independently, through several wrap-arounds with episodes spanning the seam.
    rows, num_envs, unroll = 11, 4, 3
    rng = np.random.default_rng(1)
    state = replay.init(
        {"time": jnp.zeros((), jnp.int32), "episode": jnp.zeros((), jnp.int32)},
        num_envs=num_envs,
        capacity=rows * num_envs,
    )
    insert = jax.jit(replay.insert, donate_argnums=0)
    sample = jax.jit(replay.sample, static_argnums=(2, 3, 4))
    episode = np.zeros(num_envs, np.int64)
    for c in range(9):
        done = rng.random((unroll, num_envs)) < 0.25
        t = np.arange(c * unroll, (c + 1) * unroll)[:, None] * np.ones((1, num_envs), np.int64)
        ep = episode + np.cumsum(done, axis=0) - done
        episode = episode + done.sum(axis=0)
        chunk = {"time": jnp.asarray(t, jnp.int32), "episode": jnp.asarray(ep, jnp.int32)}
        state = insert(state, chunk, jnp.asarray(done))
        newest = (c + 1) * unroll - 1
        for mode in ("clip", "renormalize"):
            s = sample(state, jax.random.key(c), 512, 0.7, mode)
            time, goal_time = np.asarray(s.transition["time"]), np.asarray(s.future["time"])
            assert time.min() >= max(0, newest - rows + 1) and goal_time.max() <= newest
            np.testing.assert_array_equal(s.future["episode"], s.transition["episode"])
            np.testing.assert_array_equal(goal_time - time, s.offset)
            assert (np.asarray(s.offset) >= 0).all()
    # Once full, every written row and env gets sampled (uniform over rows x envs).
    s = sample(state, jax.random.key(99), 4096, 0.7, "clip")
    assert (
        len(set(zip(np.asarray(s.row).tolist(), np.asarray(s.env).tolist(), strict=True)))
        == rows * num_envs
    )


def test_insert_rejects_bad_chunks():
    state = replay.init(_example(), num_envs=NUM_ENVS, capacity=12)  # 4 rows per env
    with pytest.raises(ValueError, match="chunk of 5 steps exceeds the 4 rows per env"):
        replay.insert(state, _chunk(0, length=5), jnp.zeros((5, NUM_ENVS), bool))
    with pytest.raises(ValueError, match=r"done has shape \(4, 2\); expected \(L, 3\)"):
        replay.insert(state, _chunk(0), jnp.zeros((UNROLL, 2), bool))
    bad = _chunk(0)
    bad["obs"] = bad["obs"][..., :1]
    with pytest.raises(
        ValueError, match=r"chunk leaf \['obs'\] has shape \(4, 3, 1\); expected \(4, 3, 2\)"
    ):
        replay.insert(state, bad, jnp.zeros((UNROLL, NUM_ENVS), bool))
