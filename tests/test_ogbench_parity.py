"""OGBench parity: for the same physics state our observation equals ogbench's, and one control
step (frame skip included) lands on ogbench's next state, checked against the installed ogbench
gymnasium envs (registered by `import ogbench`; no dataset download).

Backend `native` (MuJoCo C, what `auto` picks on a CPU) is checked on every case, wall contacts
included. Backend `mjx` is checked on the point and humanoid bodies, and on the ant away from the
floor: with the ant's pyramidal friction cones on the floor, MJX (mujoco-mjx 3.x) picks a different
tangent frame than MuJoCo C for some capsule-plane contacts, which changes the friction pyramid and
so the contact forces (measured: up to ~0.3 in joint velocity after one step); see docs/envs.md.
"""

from __future__ import annotations

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import ogbench  # noqa: F401  (registers the ogbench gymnasium envs)
import pytest

from crlkit.envs import make

RTOL, ATOL = 1e-4, 1e-4  # float32 state vs ogbench's float64
PARITY_ENVS = ("pointmaze-medium", "antmaze-medium", "humanoidmaze-medium")


@pytest.fixture(scope="module", params=[(n, "native") for n in PARITY_ENVS], ids=str)
def pair(request):
    """(our unwrapped env with jitted helpers, ogbench's unwrapped env) for one env name."""
    name, backend = request.param
    return _pair(name, backend)


def _pair(name: str, backend: str):
    env = make(name, backend=backend).unwrapped
    gym_env = gymnasium.make(env.spec.ogbench_env_id).unwrapped
    env.jit_init = jax.jit(env.backend.init)
    env.jit_step = jax.jit(env.step)
    env.jit_observe = jax.jit(lambda p: env.body.observe(p, env._ids))
    env.template = env.reset(jax.random.key(0))
    return env, gym_env


def _synced(env, gym_env):
    """Our EnvState holding ogbench's current physics state (warm start included)."""
    d = gym_env.data
    physics = env.jit_init(jnp.asarray(d.qpos, jnp.float32), jnp.asarray(d.qvel, jnp.float32))
    physics = physics.replace(qacc_warmstart=jnp.asarray(d.qacc_warmstart, jnp.float32))
    goal = jnp.asarray(gym_env.cur_goal_xy, jnp.float32)
    return env.template.replace(physics=physics, goal=goal)


def _compare_steps(env, gym_env, actions) -> bool:
    """From ogbench's state: same observation, then the same next observation per action.

    Returns whether ogbench saw a contact with a wall block during these steps."""
    touched_wall = False
    for action in actions:
        ours = _synced(env, gym_env)
        np.testing.assert_allclose(
            env.jit_observe(ours.physics), gym_env.get_ob(), rtol=RTOL, atol=ATOL
        )
        nxt = env.jit_step(ours, jnp.asarray(action))
        gym_ob, _, _, _, info = gym_env.step(action)
        np.testing.assert_allclose(nxt.obs[: env.spec.state_dim], gym_ob, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(
            float(nxt.success), float(info["success"]), err_msg="success flag"
        )
        touched_wall |= _wall_contact(gym_env)
    return touched_wall


def _wall_contact(gym_env) -> bool:
    d, m = gym_env.data, gym_env.model
    names = [(m.geom(c.geom1).name, m.geom(c.geom2).name) for c in d.contact[: d.ncon]]
    return any(a.startswith("block_") or b.startswith("block_") for a, b in names)


def _random_actions(n: int, dim: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (n, dim)).astype(np.float32)


def test_spec_matches_ogbench(pair):
    env, gym_env = pair
    spec = env.spec
    assert spec.state_dim == gym_env.observation_space.shape[0]
    assert spec.action_dim == gym_env.action_space.shape[0]
    assert spec.success_radius == gym_env._goal_tol
    assert spec.episode_length == gymnasium.spec(spec.ogbench_env_id).max_episode_steps
    np.testing.assert_array_equal(spec.maze.array, gym_env.maze_map)
    assert spec.num_tasks == gym_env.num_tasks
    for (start, goal), info in zip(spec.maze.tasks, gym_env.task_infos, strict=True):
        np.testing.assert_allclose(spec.maze.cell_to_xy(start), info["init_xy"])
        np.testing.assert_allclose(spec.maze.cell_to_xy(goal), info["goal_xy"])
    # every wall we build is one of ogbench's, same place and size
    ours, theirs = env.mj_model, gym_env.model
    for i in range(ours.ngeom):
        name = ours.geom(i).name
        if name.startswith("block_"):
            np.testing.assert_allclose(ours.geom(i).pos, theirs.geom(name).pos)
            np.testing.assert_allclose(ours.geom(i).size, theirs.geom(name).size)
    assert ours.opt.timestep == theirs.opt.timestep and ours.opt.integrator == theirs.opt.integrator


def test_cell_xy_conversions_match_ogbench(pair):
    env, gym_env = pair
    maze = env.spec.maze
    xy = np.random.default_rng(0).uniform(-4, 24, (50, 2))
    ours = np.asarray(maze.xy_to_cell(xy))
    assert [tuple(c) for c in ours] == [gym_env.xy_to_ij(p) for p in xy]


def test_steps_from_task_resets_match(pair):
    env, gym_env = pair
    np.random.seed(0)
    for task_id in (1, 3):
        gym_env.reset(seed=task_id, options={"task_id": task_id})
        _compare_steps(env, gym_env, _random_actions(4, env.spec.action_dim, task_id))


def test_steps_into_a_wall_match(pair):
    """Pushed against the wall west of cell (1, 1) (its face at x = -2): wall contacts."""
    env, gym_env = pair
    np.random.seed(1)
    gym_env.reset(seed=1, options={"task_id": 1})
    qpos, qvel = gym_env.data.qpos.copy(), gym_env.data.qvel.copy()
    qpos[:2] = (-1.25, 0.3) if env.spec.body == "point" else (-1.2, 0.3)
    gym_env.set_state(qpos, qvel)
    actions = _random_actions(5, env.spec.action_dim, 7)
    if env.spec.body == "point":
        actions[:, 0] = -1.0  # keep pushing west
    assert _compare_steps(env, gym_env, actions), "the case must exercise wall contacts"


def test_reset_observation_matches_ogbench_layout(pair):
    """Our reset state is ogbench-shaped: xy in the start cell, goal in the goal cell."""
    env, gym_env = pair
    s = env.reset_to_task(jax.random.key(0), 2)
    start_xy, goal_xy = gym_env.task_infos[1]["init_xy"], gym_env.task_infos[1]["goal_xy"]
    assert np.abs(np.asarray(s.obs[:2]) - start_xy).max() <= 1.0 + 0.1  # unit/4 noise (+ 0.1 point)
    assert np.abs(np.asarray(s.goal) - goal_xy).max() <= 1.0 + 1e-6


@pytest.mark.parametrize("name", ["pointmaze-medium"])
def test_mjx_point_parity(name):
    env, gym_env = _pair(name, "mjx")
    np.random.seed(0)
    gym_env.reset(seed=0, options={"task_id": 1})
    _compare_steps(env, gym_env, _random_actions(3, 2, 0))
    qpos = gym_env.data.qpos.copy()
    qpos[:2] = (-1.25, 0.3)
    gym_env.set_state(qpos, gym_env.data.qvel.copy())
    pushes = np.tile(np.float32([-1.0, 0.2]), (3, 1))
    assert _compare_steps(env, gym_env, pushes)


@pytest.mark.slow
def test_mjx_humanoid_parity():
    env, gym_env = _pair("humanoidmaze-medium", "mjx")
    np.random.seed(0)
    gym_env.reset(seed=0, options={"task_id": 1})
    _compare_steps(env, gym_env, _random_actions(3, 21, 0))


@pytest.mark.slow
def test_mjx_ant_parity_off_the_floor():
    env, gym_env = _pair("antmaze-medium", "mjx")
    np.random.seed(0)
    gym_env.reset(seed=0, options={"task_id": 1})
    for action in _random_actions(3, 8, 0):
        qpos = gym_env.data.qpos.copy()
        qpos[2] = 1.5  # airborne for the whole control step: joint limits, actuators, RK4
        gym_env.set_state(qpos, gym_env.data.qvel.copy())
        _compare_steps(env, gym_env, [action])


@pytest.mark.slow
def test_mjx_pair_cap_changes_no_contact():
    """The max_geom_pairs cap (crlkit/envs/maze.py) gives MJX the same forward dynamics as the
    uncapped model for an ant pressed into a wall corner of antmaze-large."""
    import copy

    from mujoco import mjx

    env = make("antmaze-large", backend="mjx").unwrapped
    capped = env.mj_model
    uncapped = copy.copy(capped)
    uncapped.numeric_data[0] = -1  # numeric 0 is max_geom_pairs; -1 = no cap
    states = jax.vmap(env.reset)(jax.random.split(jax.random.key(0), 8))
    # cell (1, 1) of large is at (0, 0); walls at x = -2 and y = -2: push the ant into the corner
    qpos = states.physics.qpos.at[:, 0].set(-1.2).at[:, 1].set(-1.2).at[:, 2].set(0.5)
    walls = [i for i in range(capped.ngeom) if capped.geom(i).name.startswith("block_")]
    out = []
    for model in (capped, uncapped):
        mx = mjx.put_model(model, impl="jax")
        data = mjx.make_data(model, impl="jax")

        def forward(q, v, mx=mx, data=data):
            return mjx.forward(mx, data.replace(qpos=q, qvel=v))

        d = jax.jit(jax.vmap(forward))(qpos, states.physics.qvel)
        touching = np.asarray(d._impl.contact.dist) < 0
        geoms = np.asarray(d._impl.contact.geom)[touching]
        out.append((np.asarray(d.qacc), int(touching.sum()), int(np.isin(geoms, walls).sum())))
    assert out[0][1:] == out[1][1:], "same penetrating contacts with and without the cap"
    assert out[0][2] > 0, "the case must touch walls"
    np.testing.assert_allclose(out[0][0], out[1][0], rtol=1e-4, atol=1e-3)
