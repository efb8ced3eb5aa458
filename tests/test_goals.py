"""Goal samplers: JAX == NumPy twin == analytic law, and goals never leave their episode."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from crlkit.data import goals, replay

N_DRAWS = 40_000


def _pmf(m: int, gamma: float, at_episode_end: str) -> np.ndarray:
    """Exact law of the offset on 0..m (index = offset) for a step with m future steps."""
    k = np.arange(1, m + 1)
    p = gamma ** (k - 1) * (1 - gamma)
    if at_episode_end == "clip":
        p[-1] += gamma**m  # all the tail beyond the episode lands on its last step
    else:
        p = p / p.sum()
    return np.concatenate([[0.0], p])


def _assert_matches_pmf(samples: np.ndarray, pmf: np.ndarray) -> None:
    """Pearson chi-square of sample counts against a law, bins merged until each expects >= 20."""
    counts = np.bincount(np.asarray(samples), minlength=len(pmf))
    assert len(counts) == len(pmf), "offset outside the law's support"
    expected = pmf * len(samples)
    obs_bins, exp_bins, o, e = [], [], 0.0, 0.0
    for ci, ei in zip(counts, expected, strict=True):
        o, e = o + ci, e + ei
        if e >= 20:
            obs_bins, exp_bins, o, e = [*obs_bins, o], [*exp_bins, e], 0.0, 0.0
    if e > 0:
        obs_bins[-1] += o
        exp_bins[-1] += e
    obs_bins, exp_bins = np.array(obs_bins), np.array(exp_bins)
    stat = float(((obs_bins - exp_bins) ** 2 / exp_bins).sum())
    dof = max(len(exp_bins) - 1, 1)
    # About a 1e-6 false-alarm level; a wrong law (e.g. gamma 0.9 vs 0.8) scores in the thousands.
    assert stat < dof + 7 * math.sqrt(2 * dof) + 10, f"chi2 {stat:.1f} with {dof} dof"


@pytest.mark.parametrize("at_episode_end", ["clip", "renormalize"])
@pytest.mark.parametrize("m", [1, 7, 60])
def test_geometric_offsets_follow_the_law_in_jax_and_numpy(m, at_episode_end):
    gamma = 0.9
    jax_k = goals.geometric_offsets(jax.random.key(m), jnp.full(N_DRAWS, m), gamma, at_episode_end)
    np_k = goals.geometric_offsets_np(
        np.random.default_rng(m), np.full(N_DRAWS, m), gamma, at_episode_end
    )
    pmf = _pmf(m, gamma, at_episode_end)
    _assert_matches_pmf(np.asarray(jax_k), pmf)
    _assert_matches_pmf(np_k, pmf)


def test_chi_square_check_can_fail():
    wrong = goals.geometric_offsets_np(np.random.default_rng(0), np.full(N_DRAWS, 60), 0.8, "clip")
    with pytest.raises(AssertionError, match="chi2"):
        _assert_matches_pmf(wrong, _pmf(60, 0.9, "clip"))


def test_zero_future_gives_offset_zero():
    m = jnp.array([0, 0, 3])
    for mode in goals.AT_EPISODE_END:
        np.testing.assert_array_equal(
            goals.geometric_offsets(jax.random.key(0), m, 0.5, mode)[:2], 0
        )
        np.testing.assert_array_equal(
            goals.geometric_offsets_np(np.random.default_rng(0), np.asarray(m), 0.5, mode)[:2], 0
        )
    np.testing.assert_array_equal(goals.uniform_offsets(jax.random.key(0), m)[:2], 0)


@pytest.mark.parametrize("m", [1, 5, 33])
def test_uniform_offsets_are_uniform_in_jax_and_numpy(m):
    pmf = np.concatenate([[0.0], np.full(m, 1.0 / m)])
    _assert_matches_pmf(
        np.asarray(goals.uniform_offsets(jax.random.key(m), jnp.full(N_DRAWS, m))), pmf
    )
    _assert_matches_pmf(
        goals.uniform_offsets_np(np.random.default_rng(m), np.full(N_DRAWS, m)), pmf
    )


def test_bad_gamma_and_end_rule_are_one_line_errors():
    with pytest.raises(ValueError, match="gamma=1.0 must lie strictly between 0 and 1"):
        goals.geometric_offsets_np(np.random.default_rng(0), np.ones(3), 1.0)
    with pytest.raises(ValueError, match="at_episode_end='wrap'; valid: clip, renormalize"):
        goals.geometric_offsets(jax.random.key(0), jnp.ones(3), 0.9, "wrap")
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\] and sum to 1"):
        goals.GoalMix(p_current=0.5, p_trajectory=0.6, p_random=0.0)


# ---------------------------------------------------------------------------------------------
# The ring


def _filled_ring(seed: int, rows: int = 23, num_envs: int = 5, unroll: int = 4, chunks: int = 17):
    """A ring that wrapped several times, with random episode ends, plus a host-side history."""
    rng = np.random.default_rng(seed)
    state = replay.init({"time": jnp.zeros((), jnp.int32)}, num_envs, rows * num_envs)
    history = []  # done flags [time, env]
    insert = jax.jit(replay.insert, donate_argnums=0)
    for c in range(chunks):
        done = rng.random((unroll, num_envs)) < 0.15
        t = np.arange(c * unroll, (c + 1) * unroll)[:, None] * np.ones((1, num_envs), np.int32)
        state = insert(state, {"time": jnp.asarray(t)}, jnp.asarray(done))
        history.append(done)
    return state, np.concatenate(history)


def _brute_force_end_time(done: np.ndarray, time: int, env: int, newest: int) -> int:
    """Last written step of the episode holding `time`: walk forward to its done flag."""
    t = time
    while t < newest and not done[t, env]:
        t += 1
    return t


def test_ring_finds_episode_ends_like_a_brute_force_walk():
    state, done = _filled_ring(seed=3)
    rows, newest = state.rows_per_env, done.shape[0] - 1
    row = jnp.asarray(np.repeat(np.arange(rows), state.num_envs), jnp.int32)
    env = jnp.asarray(np.tile(np.arange(state.num_envs), rows), jnp.int32)
    time = np.asarray(state.data["time"])[np.asarray(row), np.asarray(env)]
    want = np.array(
        [
            _brute_force_end_time(done, t, e, newest)
            for t, e in zip(time, np.asarray(env), strict=True)
        ]
    )
    # gamma near 1 pushes every offset past the episode's end, so "clip" returns exactly the end.
    args = (state.episode_id, state.insert_pos, state.size, row, env, 1 - 1e-6, "clip")
    goal_row, _ = goals.future_rows_in_ring(jax.random.key(0), *args)
    goal_row_np, _ = goals.future_rows_in_ring_np(
        np.random.default_rng(0), *[np.asarray(a) if hasattr(a, "shape") else a for a in args]
    )
    np.testing.assert_array_equal(np.asarray(state.data["time"])[goal_row, env], want)
    np.testing.assert_array_equal(np.asarray(goal_row_np), np.asarray(goal_row))


@pytest.mark.parametrize("at_episode_end", ["clip", "renormalize"])
def test_ring_jax_and_numpy_agree_in_distribution_and_stay_in_episode(at_episode_end):
    state, done = _filled_ring(seed=4)
    rng = np.random.default_rng(5)
    row = rng.integers(0, state.rows_per_env, N_DRAWS)
    env = rng.integers(0, state.num_envs, N_DRAWS)
    ep, time = np.asarray(state.episode_id), np.asarray(state.data["time"])
    args = (ep, int(state.insert_pos), int(state.size), row, env, 0.8, at_episode_end)
    goal_row, offset = goals.future_rows_in_ring(
        jax.random.key(1), *[jnp.asarray(a) for a in args[:5]], *args[5:]
    )
    goal_row_np, offset_np = goals.future_rows_in_ring_np(rng, *args)
    for g, k in ((np.asarray(goal_row), np.asarray(offset)), (goal_row_np, offset_np)):
        np.testing.assert_array_equal(ep[g, env], ep[row, env])  # same episode
        np.testing.assert_array_equal(time[g, env] - time[row, env], k)  # forward, never wraps back
        assert time[g, env].max() <= done.shape[0] - 1
    # The twins agree: offsets of each sample whose episode has m future steps follow the law.
    m = np.array(
        [
            _brute_force_end_time(done, t, e, done.shape[0] - 1) - t
            for t, e in zip(time[row, env], env, strict=True)
        ]
    )
    for m_value in (1, 4, 12):
        sel = m == m_value
        if sel.sum() > 500:
            _assert_matches_pmf(np.asarray(offset)[sel], _pmf(m_value, 0.8, at_episode_end))
            _assert_matches_pmf(offset_np[sel], _pmf(m_value, 0.8, at_episode_end))
    assert abs(np.asarray(offset).mean() - offset_np.mean()) < 0.05


# ---------------------------------------------------------------------------------------------
# The flat dataset (OGBench compact: episode_ends per row, valid rows exclude each final row)


def _flat(episode_lengths=(5, 40, 1, 17, 80, 3, 60)):
    ends = np.concatenate(
        [
            np.full(n, s + n - 1)
            for s, n in zip(np.cumsum((0, *episode_lengths[:-1])), episode_lengths, strict=True)
        ]
    )
    valid_rows = np.flatnonzero(ends != np.arange(len(ends)))
    return ends.astype(np.int32), valid_rows.astype(np.int32)


def test_flat_geometric_goals_follow_the_clipped_law_and_stay_in_episode():
    ends, valid_rows = _flat()
    rows = np.random.default_rng(0).choice(valid_rows, N_DRAWS)
    jax_goal = np.asarray(
        goals.geometric_future_rows(jax.random.key(0), jnp.asarray(rows), jnp.asarray(ends), 0.9)
    )
    np_goal = goals.geometric_future_rows_np(np.random.default_rng(1), rows, ends, 0.9)
    for goal in (jax_goal, np_goal):
        assert ((goal > rows) & (goal <= ends[rows])).all()
        for m_value in (2, 30):
            sel = ends[rows] - rows == m_value
            _assert_matches_pmf(goal[sel] - rows[sel], _pmf(m_value, 0.9, "clip"))


def test_flat_uniform_goals_cover_the_future_evenly():
    ends, valid_rows = _flat()
    rows = np.random.default_rng(0).choice(valid_rows, N_DRAWS)
    jax_goal = np.asarray(
        goals.uniform_future_rows(jax.random.key(0), jnp.asarray(rows), jnp.asarray(ends))
    )
    np_goal = goals.uniform_future_rows_np(np.random.default_rng(1), rows, ends)
    for goal in (jax_goal, np_goal):
        assert ((goal > rows) & (goal <= ends[rows])).all()
        sel = ends[rows] - rows == 50
        _assert_matches_pmf(goal[sel] - rows[sel], np.concatenate([[0.0], np.full(50, 1 / 50)]))
    final = jnp.asarray([4, 45])  # final rows keep themselves
    np.testing.assert_array_equal(
        goals.uniform_future_rows(jax.random.key(0), final, jnp.asarray(ends)), final
    )


def _categories(rows, goal, ends):
    """Fractions of goals that are the row itself, in its episode's future, or anywhere else."""
    current = goal == rows
    future = (goal > rows) & (goal <= ends[rows])
    return np.array([current.mean(), future.mean(), (~current & ~future).mean()])


def test_goal_mixtures_match_their_probabilities_in_jax_and_numpy():
    # Many short episodes, so random goals rarely land in the sample's own episode.
    ends, valid_rows = _flat(tuple([12] * 400))
    mix = goals.GoalMix(p_current=0.2, p_trajectory=0.5, p_random=0.3, geometric=True)
    rows = np.random.default_rng(0).choice(valid_rows, N_DRAWS)
    jax_goal = np.asarray(
        goals.mixed_goal_rows(
            jax.random.key(0),
            jnp.asarray(rows),
            jnp.asarray(ends),
            jnp.asarray(valid_rows),
            mix,
            0.99,
        )
    )
    np_goal = goals.mixed_goal_rows_np(np.random.default_rng(1), rows, ends, valid_rows, mix, 0.99)
    for goal in (jax_goal, np_goal):
        np.testing.assert_allclose(_categories(rows, goal, ends), [0.2, 0.5, 0.3], atol=0.015)
        assert np.isin(goal, np.arange(len(ends))).all()


def test_offline_batch_rows_use_valid_rows_and_ogbench_defaults():
    ends, valid_rows = _flat()
    kw = {"batch_size": 4096, "gamma": 0.5}
    batch = goals.sample_offline_rows(
        jax.random.key(0), jnp.asarray(valid_rows), jnp.asarray(ends), **kw
    )
    batch_np = goals.sample_offline_rows_np(np.random.default_rng(0), valid_rows, ends, **kw)
    for b in (batch, batch_np):
        rows, critic, actor = (np.asarray(x) for x in b)
        assert np.isin(rows, valid_rows).all()
        for goal in (critic, actor):  # defaults: trajectory goals only
            assert ((goal > rows) & (goal <= ends[rows])).all()
    # Critic goals are geometric (near at gamma 0.5), actor goals uniform (farther on average).
    for b in (batch, batch_np):
        rows, critic, actor = (np.asarray(x) for x in b)
        assert (critic - rows).mean() < (actor - rows).mean()
    assert goals.ACTOR_GOALS_STITCH.p_random == 0.5 and not goals.ACTOR_GOALS_STITCH.geometric
