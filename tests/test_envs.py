"""Env API, registry, maze layouts, auto-reset and bad input (physics on backend 'auto')."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from click.testing import CliRunner

from crlkit.envs import list_envs, make, make_spec, registry
from crlkit.envs.layouts import PAPER_TEXT
from crlkit.envs.maze import touchable_walls
from crlkit.envs.registry import build_model

PAPER_NAMES = ("ant-u4-maze", "ant-u5-maze", "ant-big-maze", "ant-hardest-maze")
ISSUE_NAMES = (
    [f"pointmaze-{m}" for m in ("arena", "medium", "large", "giant")]
    + [f"antmaze-{m}" for m in ("arena", "medium", "large", "giant")]
    + [f"humanoidmaze-{m}" for m in ("medium", "large", "giant")]
    + ["ant", "humanoid", *PAPER_NAMES, "humanoid-u-maze", "humanoid-big-maze"]
)
EVAL_NAMES = (
    "ant-u4-maze-eval",
    "ant-u5-maze-eval",
    "ant-big-maze-eval",
    "humanoid-u-maze-eval",
    "humanoid-big-maze-eval",
)
NUM_ENVS, NUM_STEPS = 4, 200


def test_registry_has_the_issue_names():
    locomotion = [n for n in list_envs() if not n.startswith("arm-")]
    assert sorted(locomotion) == sorted([*ISSUE_NAMES, *EVAL_NAMES])


def _rollout(env, key):
    """Jitted vmapped reset + NUM_STEPS random steps; returns (first state, all states)."""

    def run(key):
        k_reset, k_act = jax.random.split(key)
        state = env.reset_batch(k_reset, NUM_ENVS)

        def body(s, k):
            a = jax.random.uniform(k, (NUM_ENVS, env.spec.action_dim), minval=-1, maxval=1)
            s = env.step_batch(s, a)
            return s, s

        _, traj = jax.lax.scan(body, state, jax.random.split(k_act, NUM_STEPS))
        return state, traj

    return jax.jit(run)(key)


@pytest.mark.parametrize("name", ISSUE_NAMES)
def test_every_env_resets_and_steps(name):
    env = make(name, backend="auto", episode_length=50)
    spec = env.spec
    first, traj = _rollout(env, jax.random.key(0))
    assert first.obs.shape == (NUM_ENVS, spec.state_dim + spec.goal_dim)
    assert traj.obs.shape == (NUM_STEPS, NUM_ENVS, spec.obs_dim)
    assert traj.goal.shape == (NUM_STEPS, NUM_ENVS, spec.goal_dim)
    assert traj.physics.qpos.shape[:2] == (NUM_STEPS, NUM_ENVS)
    assert np.isfinite(np.asarray(traj.obs)).all()
    # obs = concat(state, goal); the goal is the goal slice of a state (body xy; paper humanoid:
    # torso xyz, which is qpos[:3]).
    np.testing.assert_array_equal(traj.obs[..., spec.state_dim :], traj.goal)
    np.testing.assert_allclose(
        traj.obs[..., list(spec.goal_indices)],
        traj.physics.qpos[..., : spec.goal_dim],
        atol=1e-6,
    )
    # episode limit 50 over 200 steps: every env auto-resets (a new goal) at least 3 times.
    assert (np.asarray(traj.done).sum(0) >= 3).all()
    later = np.asarray(traj.goal).reshape(-1, spec.goal_dim)
    goals = np.concatenate([np.asarray(first.goal), later])[:, :2]  # humanoid: z fixed 1.25
    assert len(np.unique(goals.round(4), axis=0)) > NUM_ENVS, "resets must draw fresh goals"
    if spec.maze is not None:
        assert bool(spec.maze.is_free(goals).all()), "every goal lies in a free cell"
    else:
        dist = np.linalg.norm(goals, axis=-1)
        low, high = (10.0, 10.0) if name == "ant" else (1.0, 5.0)
        assert ((dist >= low - 1e-4) & (dist <= high + 1e-4)).all()


def test_auto_reset_semantics():
    env = make("pointmaze-medium", backend="auto", episode_length=3)
    s0 = env.reset(jax.random.key(1))
    step = jax.jit(env.step)
    a = jnp.zeros(2)
    s1 = step(s0, a)
    s2 = step(s1, a)
    s3 = step(s2, a)
    assert [float(s.done) for s in (s1, s2, s3)] == [0.0, 0.0, 1.0]
    assert float(s3.truncation) == 1.0 and int(s3.steps) == 0
    # the new episode has a fresh goal and start; the old goal is gone.
    assert not np.allclose(s3.goal, s0.goal)
    np.testing.assert_array_equal(s3.obs[2:], s3.goal)
    s4 = step(s3, a)
    assert float(s4.done) == 0.0 and int(s4.steps) == 1
    np.testing.assert_array_equal(s4.goal, s3.goal)


def test_step_batch_equals_vmapped_step():
    """The batched auto-reset (resets behind one cond) returns what vmap(step) returns."""
    env = make("antmaze-medium", backend="auto", episode_length=3)
    s = env.reset_batch(jax.random.key(2), 4)
    s = s.replace(steps=jnp.array([0, 1, 1, 0], jnp.int32))  # staggered ends; some steps none
    batched, vmapped = jax.jit(env.step_batch), jax.jit(jax.vmap(env.step))
    a, b, dones = s, s, []
    for t in range(4):
        action = jax.random.uniform(jax.random.key(t), (4, 8), minval=-1.0, maxval=1.0)
        a, b = batched(a, action), vmapped(b, action)
        dones.append([int(x) for x in a.done])
        for name in ("done", "truncation", "steps", "goal", "success"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
        np.testing.assert_array_equal(a.physics.qpos, b.physics.qpos)
        np.testing.assert_array_equal(jax.random.key_data(a.rng), jax.random.key_data(b.rng))
        np.testing.assert_allclose(a.obs, b.obs, rtol=0, atol=1e-5)
    assert dones == [[0, 0, 0, 0], [0, 1, 1, 0], [1, 0, 0, 1], [0, 0, 0, 0]]


def test_unwrapped_has_no_limit():
    env = make("pointmaze-medium", backend="auto", episode_length=2).unwrapped
    s = env.reset(jax.random.key(0))
    for _ in range(4):
        s = env.step(s, jnp.zeros(2))
    assert int(s.steps) == 4 and float(s.done) == 0.0


@pytest.mark.parametrize("name,z,action_dim", [("humanoid", 0.3, 17), ("ant", 1.5, 8)])
def test_paper_bodies_terminate_when_torso_leaves_band(name, z, action_dim):
    env = make(name, backend="auto")
    s = env.reset(jax.random.key(0))
    band = env.spec.healthy_z
    assert band[0] < float(s.physics.qpos[2]) < band[1] and float(s.done) == 0.0
    fallen = s.replace(physics=s.physics.replace(qpos=s.physics.qpos.at[2].set(z)))
    nxt = env.unwrapped.step(fallen, jnp.zeros(action_dim))
    assert float(nxt.done) == 1.0 and float(nxt.truncation) == 0.0
    # OGBench's humanoidmaze never terminates on a fall.
    hm = make("humanoidmaze-medium", backend="auto").unwrapped
    s = hm.reset(jax.random.key(0))
    s = s.replace(physics=s.physics.replace(qpos=s.physics.qpos.at[2].set(0.3)))
    assert float(hm.step(s, jnp.zeros(21)).done) == 0.0


def test_success_and_distance():
    env = make("antmaze-medium", backend="auto").unwrapped
    s = env.reset(jax.random.key(3))
    xy = np.asarray(s.physics.qpos[:2])
    np.testing.assert_allclose(s.dist_to_goal, np.linalg.norm(xy - np.asarray(s.goal)), rtol=1e-5)
    far = s.replace(goal=s.physics.qpos[:2] + jnp.asarray([3.0, 0.0]))
    assert float(env.step(far, jnp.zeros(8)).success) == 0.0
    near = s.replace(goal=s.physics.qpos[:2] + 0.1)
    assert float(env.step(near, jnp.zeros(8)).success) == 1.0


def test_paper_layouts_follow_reference_coordinates():
    # REFERENCE.md: text cell (r, c) sits at world (r * unit, c * unit); u4's R is text (2, 1).
    spec = make_spec("ant-u4-maze", backend="auto")
    np.testing.assert_allclose(spec.maze.cell_to_xy(spec.maze.start_cells[0]), [8.0, 4.0])
    text = PAPER_TEXT["u4"]
    g_text = {(r, c) for r, row in enumerate(text) for c, ch in enumerate(row) if ch == "G"}
    g_world = {tuple(np.asarray(spec.maze.cell_to_xy(c)) / 4.0) for c in spec.maze.goal_cells}
    assert g_world == {(float(r), float(c)) for r, c in g_text}
    hspec = make_spec("humanoid_big_maze", backend="auto")
    assert hspec.maze.unit == 2.0 and hspec.name == "humanoid-big-maze"
    env = make("ant-u4-maze", backend="auto")
    s = env.reset_batch(jax.random.key(0), 16)
    np.testing.assert_allclose(
        s.physics.qpos[:, :2], np.broadcast_to([8.0, 4.0], (16, 2)), atol=0.1
    )


def test_walls_left_out_are_untouchable():
    grid = np.asarray(
        [[1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 0, 1, 1], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1]]
    )
    assert sorted(touchable_walls(grid)) == [
        (i, j) for i in (1, 2, 3) for j in (1, 2, 3) if (i, j) != (2, 2)
    ]
    model = build_model("antmaze-giant")
    assert model.ngeom < 13 + 16 * 12  # body geoms + floor + target + fewer walls than cells


def test_reset_to_task_places_start_and_goal():
    env = make("antmaze-large", backend="auto")
    spec = env.spec
    assert spec.num_tasks == 5
    for task_id in range(1, 6):
        s = jax.jit(env.reset_to_task, static_argnums=1)(jax.random.key(task_id), task_id)
        start_cell, goal_cell = spec.maze.tasks[task_id - 1]
        noise = spec.maze.unit / 4 + 1e-5
        assert np.abs(s.goal - spec.maze.cell_to_xy(goal_cell)).max() <= noise
        assert np.abs(s.physics.qpos[:2] - spec.maze.cell_to_xy(start_cell)).max() <= noise
    # task_id may be traced (vmapped over tasks)
    states = jax.vmap(env.reset_to_task)(jax.random.split(jax.random.key(0), 5), jnp.arange(1, 6))
    assert states.obs.shape == (5, spec.obs_dim)


def test_bad_input_is_one_line_value_error():
    with pytest.raises(ValueError, match="did you mean 'antmaze-large'") as err:
        make("antmze-large")
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="unknown backend 'cuda'"):
        make("antmaze-large", backend="cuda")
    env = make("pointmaze-medium", backend="auto")
    with pytest.raises(ValueError, match="num_envs must be an integer >= 1, got 0"):
        env.reset_batch(jax.random.key(0), 0)
    s = env.reset(jax.random.key(0))
    with pytest.raises(ValueError, match=r"action of shape \(3,\).*action_dim=2"):
        env.step(s, jnp.zeros(3))
    with pytest.raises(ValueError, match="action_dim=2"):
        env.step_batch(env.reset_batch(jax.random.key(0), 2), jnp.zeros((2, 5)))
    with pytest.raises(ValueError, match="task_id 6 out of range"):
        env.reset_to_task(jax.random.key(0), 6)
    with pytest.raises(ValueError, match="no fixed evaluation tasks"):
        make("ant", backend="auto").reset_to_task(jax.random.key(0), 1)


def test_underscore_alias():
    assert make_spec("ant_big_maze").name == "ant-big-maze"
    assert make_spec("HUMANOIDMAZE_MEDIUM").name == "humanoidmaze-medium"


def test_mjx_backend_matches_auto_on_pointmaze():
    """Same key, same action: the mjx env and the default env agree (short, 2 envs)."""
    mjx_env = make("pointmaze-medium", backend="mjx")
    ref_env = make("pointmaze-medium", backend="auto")
    assert mjx_env.spec.backend == "mjx"
    keys = jax.random.split(jax.random.key(5), 2)
    actions = jnp.asarray([[0.5, -1.0], [1.0, 1.0]])
    out = []
    for env in (mjx_env, ref_env):
        s = jax.jit(jax.vmap(env.reset))(keys)
        s = jax.jit(jax.vmap(env.step))(s, actions)
        out.append(np.asarray(s.obs))
    np.testing.assert_allclose(out[0], out[1], atol=1e-5)


def test_cli_envs_lists_every_name():
    from crlkit.cli.envs import envs

    result = CliRunner().invoke(envs, [])
    assert result.exit_code == 0, result.output
    for name in ISSUE_NAMES:
        assert f"\n{name} " in result.output
    assert "backends available:" in result.output
    one = CliRunner().invoke(envs, ["ant_big_maze"])
    assert one.exit_code == 0 and '"name": "ant-big-maze"' in one.output
    bad = CliRunner().invoke(envs, ["antmze-large"])
    assert bad.exit_code == 2 and "did you mean 'antmaze-large'" in bad.output


@pytest.mark.parametrize("name", ["pointmaze-medium", "antmaze-large", "humanoid-u-maze"])
def test_mjx_pair_cap_keeps_every_pair_that_can_touch(name):
    """MJX's `max_geom_pairs` cap >= robot/wall pairs whose bounding spheres overlap, anywhere.

    Samples body poses (the env's own reset distribution) placed anywhere inside free cells."""
    import mujoco

    env = make(name, backend="auto").unwrapped
    model = env.mj_model
    cap = int(model.numeric("max_geom_pairs").data[0])
    maze = env.spec.maze
    walls = np.flatnonzero([model.geom(i).name.startswith("block_") for i in range(model.ngeom)])
    robot = np.flatnonzero(model.geom_bodyid != 0)
    data = mujoco.MjData(model)
    rng = np.random.default_rng(0)
    free = np.asarray(maze.free_cells)
    states = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.key(0), 200))
    most = 0
    for k in range(200):
        data.qpos[:] = np.asarray(states.physics.qpos[k])
        cell = free[rng.integers(len(free))]
        offset = rng.uniform(-0.45, 0.45, 2) * maze.unit
        data.qpos[:2] = np.asarray(maze.cell_to_xy(cell)) + offset
        mujoco.mj_kinematics(model, data)
        for gtype in np.unique(model.geom_type[robot]):
            geoms = robot[model.geom_type[robot] == gtype]
            gap = np.linalg.norm(data.geom_xpos[geoms, None] - data.geom_xpos[None, walls], axis=-1)
            gap -= model.geom_rbound[geoms, None] + model.geom_rbound[None, walls]
            most = max(most, int((gap <= 0).sum()))
    assert 0 < most <= cap


def _docs_block(heading: str) -> str:
    """The first python code block under `heading` in docs/envs.md."""
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / "envs.md").read_text()
    section = text.split(heading + "\n", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_adding_an_env_as_the_docs_show(monkeypatch, capsys):
    """docs/envs.md "Adding an env", run as written: a new maze and a new open-floor task."""
    from crlkit.cli.envs import envs

    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))
    exec(compile(_docs_block("## Adding an env"), "docs/envs.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed == ["pointmaze-corridor ogbench 4 (4, 4)", "ant-near paper 31 (4, 31)"]
    corridor = make_spec("pointmaze_corridor")
    assert corridor.maze.start_cells == ((1, 1),) and corridor.maze.goal_cells == ((3, 1),)
    np.testing.assert_allclose(corridor.maze.cell_to_xy((1, 1)), [0.0, 0.0])
    assert (corridor.episode_length, corridor.success_radius, corridor.num_tasks) == (200, 1.0, 0)
    near = make("ant-near", episode_length=20)
    first, traj = _rollout(near, jax.random.key(3))
    goals = np.concatenate([np.asarray(first.goal), np.asarray(traj.goal).reshape(-1, 2)])
    dist = np.linalg.norm(goals, axis=-1)
    assert ((dist >= 3.0 - 1e-4) & (dist <= 6.0 + 1e-4)).all()
    assert near.spec.healthy_z == (0.2, 1.0) and near.spec.backends[0] == "spring"
    listed = CliRunner().invoke(envs, [])
    assert re.search(r"\npointmaze-corridor +ogbench +2\+2 ", listed.output), listed.output
    assert re.search(r"\nant-near +paper +29\+2 ", listed.output)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("ant_near", registry.REGISTRY["ant-near"])
    with pytest.raises(ValueError, match="exactly one of maze= and open_floor="):
        registry.locomotion("point", episode_length=10, success_radius=1.0)
