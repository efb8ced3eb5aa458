"""The paper's envs as the paper's code defines them: bodies, time steps, sizes, eval layouts."""

from __future__ import annotations

import json

import jax
import mujoco
import numpy as np
import pytest
from click.testing import CliRunner

from crlkit.envs import make, make_spec, registry
from crlkit.envs.registry import build_model, check_same_family

ANT_NAMES = ("ant", "ant-u4-maze", "ant-u5-maze", "ant-big-maze", "ant-hardest-maze")
HUMANOID_NAMES = ("humanoid", "humanoid-u-maze", "humanoid-big-maze")
EVAL_PAIRS = {
    "ant-u4-maze-eval": "ant-u4-maze",
    "ant-u5-maze-eval": "ant-u5-maze",
    "ant-big-maze-eval": "ant-big-maze",
    "humanoid-u-maze-eval": "humanoid-u-maze",
    "humanoid-big-maze-eval": "humanoid-big-maze",
}


def _envs_json() -> dict[str, dict]:
    from crlkit.cli.envs import envs

    result = CliRunner().invoke(envs, ["--json"])
    assert result.exit_code == 0, result.output
    return {row["name"]: row for row in json.loads(result.output)}


def test_cli_envs_json_shows_the_paper_facts():
    rows = _envs_json()
    for name in ANT_NAMES:
        row = rows[name]
        assert (row["family"], row["action_dim"], row["goal_dim"]) == ("paper", 8, 2)
        assert (row["state_dim"], row["goal_indices"], row["control_dt"]) == (29, [0, 1], 0.05)
        assert row["terminates"] and row["healthy_z"] == [0.2, 1.0]
    for name in HUMANOID_NAMES:
        row = rows[name]
        assert (row["family"], row["action_dim"], row["state_dim"]) == ("paper", 17, 268)
        assert (row["goal_dim"], row["goal_indices"], row["control_dt"]) == (3, [0, 1, 2], 0.015)
        assert row["terminates"] and row["easy_success_radius"] == 2.0
    for row in (rows[n] for n in (*ANT_NAMES, *HUMANOID_NAMES)):
        assert row["episode_length"] == 1000 and row["success_radius"] == 0.5
        assert {"mjx", "native"} <= set(row["backends"])
    large = rows["antmaze-large"]  # OGBench's ant, unchanged
    assert (large["family"], large["state_dim"], large["action_dim"]) == ("ogbench", 29, 8)
    assert (large["control_dt"], large["terminates"], large["goal_dim"]) == (0.1, False, 2)
    assert "spring" not in large["backends"]
    for name in ("arm-push-easy", "arm-push-hard", "arm-binpick-hard"):  # their own family
        assert (rows[name]["family"], rows[name]["action_dim"]) == ("arm", 5)
        assert "spring" not in rows[name]["backends"]


def test_ant_model_is_brax_ant():
    m = build_model("ant")
    np.testing.assert_array_equal(m.actuator_gear[:, 0], 150.0)
    np.testing.assert_array_equal(m.actuator_ctrlrange, [[-1.0, 1.0]] * 8)
    assert m.opt.timestep == 0.005 and m.opt.integrator == mujoco.mjtIntegrator.mjINT_EULER
    assert (m.nq, m.nv, m.nu, m.nbody) == (15, 14, 8, 10)  # jointless leg roots fused
    colliding = [
        mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, i)
        for i in np.flatnonzero((m.geom_contype > 0) & (m.geom_bodyid > 0))
    ]
    assert sorted(colliding) == sorted(
        ["left_foot_geom", "right_foot_geom", "third_foot_geom", "fourth_foot_geom"]
    )
    torso = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "torso_geom")
    assert m.geom_size[torso, 0] == 0.25 and m.geom_conaffinity[torso] == 0
    maze = build_model("ant-big-maze")  # the paper's maze ant: torso, hips and feet touch walls
    assert maze.geom_conaffinity[torso] == 1


def test_humanoid_model_is_brax_humanoid_with_target():
    m = build_model("humanoid")
    assert (m.nq, m.nv, m.nu, m.ntendon) == (26, 25, 17, 0)
    assert m.opt.timestep == 0.0015
    np.testing.assert_array_equal(m.actuator_gear[:, 0], [350.0] * 11 + [100.0] * 6)
    names = [mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, i) for i in range(m.nbody)]
    assert names[-1] == "target" and "right_foot" not in names  # feet fused into the shins
    assert m.nbody - 1 == 12


def test_humanoid_goal_is_torso_xyz_against_target_height():
    env = make("humanoid", backend="native").unwrapped
    s = jax.jit(env.reset)(jax.random.key(1))
    assert s.goal.shape == (3,) and float(s.goal[2]) == 1.25
    np.testing.assert_allclose(s.physics.qpos[-2:], s.goal[:2])  # the target body sits at it
    dist = np.linalg.norm(np.asarray(s.physics.qpos[:3]) - np.asarray(s.goal))
    np.testing.assert_allclose(float(s.dist_to_goal), dist, rtol=1e-5)
    assert 1.0 <= float(np.linalg.norm(s.goal[:2])) <= 5.0
    np.testing.assert_array_equal(s.obs[243:268], 0.0)  # no actuator force before a step


def test_new_goal_mid_episode_moves_the_humanoids_target_as_a_reset_places_it():
    """`crlkit collect` re-goals mid-episode: the paper's humanoid state holds the target's
    slide joints and its mass in the centre of mass, so those follow the goal; the body, its
    velocities and the last step's actuator forces do not change."""
    env = make("humanoid", backend="native")
    bare = env.unwrapped
    s = jax.jit(env.step)(jax.jit(env.reset)(jax.random.key(1)), jax.numpy.full(17, 0.3))
    goal = bare.goal_of_xy(jax.numpy.array([2.5, -1.0]))
    t = jax.jit(env.with_goal)(s, goal)
    obs, old = np.asarray(t.obs), np.asarray(s.obs)
    np.testing.assert_array_equal(obs[268:], goal)
    np.testing.assert_array_equal(np.asarray(t.physics.qpos[-2:]), [2.5, -1.0])
    np.testing.assert_array_equal(obs[24:26], [2.5, -1.0])  # the state's qpos copy of it
    np.testing.assert_array_equal(obs[:24], old[:24])  # the humanoid itself stays put
    np.testing.assert_array_equal(obs[26:51], old[26:51])  # velocities
    np.testing.assert_array_equal(obs[243:268], old[243:268])  # actuator forces of the step
    assert np.abs(obs[51:171] - old[51:171]).max() > 1e-3  # inertia about the moved centre
    # Observed as a fresh observation of the moved physics would be (same forces).
    fresh = np.asarray(bare.body.observe(t.physics, bare._ids))
    np.testing.assert_allclose(obs[:243], fresh[:243], rtol=1e-6, atol=1e-6)
    same = jax.jit(env.with_goal)(s, s.goal)  # an unchanged goal changes nothing
    np.testing.assert_array_equal(np.asarray(same.obs), old)
    nxt = jax.jit(env.step)(t, jax.numpy.zeros(17))
    assert np.isfinite(np.asarray(nxt.obs)).all() and float(nxt.dist_to_goal) > 0


def test_new_goal_mid_episode_leaves_a_body_without_observed_marker_alone():
    env = make("ant", backend="native")
    s = jax.jit(env.reset)(jax.random.key(1))
    t = env.with_goal(s, jax.numpy.array([3.0, 4.0]))
    np.testing.assert_array_equal(np.asarray(t.obs[:29]), np.asarray(s.obs[:29]))
    np.testing.assert_array_equal(np.asarray(t.physics.qpos), np.asarray(s.physics.qpos))
    np.testing.assert_array_equal(np.asarray(t.obs[29:]), [3.0, 4.0])


@pytest.mark.parametrize("eval_name,train_name", sorted(EVAL_PAIRS.items()))
def test_eval_layouts_keep_walls_and_start(eval_name, train_name):
    ev, tr = make_spec(eval_name).maze, make_spec(train_name).maze
    assert ev.grid == tr.grid and ev.start_cells == tr.start_cells and ev.unit == tr.unit
    assert set(ev.goal_cells) < set(tr.goal_cells)
    assert check_same_family(train_name, eval_name.replace("-", "_")) == eval_name


def test_eval_env_of_another_family_is_one_line_error():
    with pytest.raises(ValueError, match="valid: ") as err:
        check_same_family("ant-big-maze", "humanoid-big-maze-eval")
    assert "\n" not in str(err.value) and "'humanoid-big-maze-eval'" in str(err.value)
    with pytest.raises(ValueError, match="unknown env"):
        check_same_family("ant", "ant-huge-maze")


def test_bad_backend_is_one_line_error(monkeypatch):
    with pytest.raises(ValueError, match="'bogus' for env 'ant'; valid: auto, spring, mjx"):
        make("ant", backend="bogus")
    with pytest.raises(ValueError, match="valid: auto, mjx, native, warp$"):
        make_spec("antmaze-large", backend="spring")
    monkeypatch.setattr(registry, "available_backends", lambda: ["mjx", "native"])
    with pytest.raises(ValueError, match=r"pip install 'crlkit\[brax\]'") as err:
        make("humanoid", backend="spring")
    assert "\n" not in str(err.value)


def test_paper_ant_reset_is_brax_init_pose_with_noise():
    env = make("ant", backend="native").unwrapped
    s = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.key(0), 64))
    init = np.array([0, 0, 0.55, 1, 0, 0, 0, 0, 1, 0, -1, 0, -1, 0, 1], np.float32)
    q = np.asarray(s.physics.qpos)
    assert np.abs(q[:, 2:] - init[2:]).max() <= 0.1 + 1e-6
    assert np.abs(q[:, 2:] - init[2:]).max() > 0.05  # noise is there
    assert np.all(np.abs(np.linalg.norm(np.asarray(s.goal), axis=1) - 10.0) < 1e-4)


def test_humanoid_evaluation_reports_the_papers_easy_success():
    """The paper also reports humanoid success within 2.0 ("easy"); envs without it do not."""
    import jax.numpy as jnp

    from crlkit.train.evaluate import Policy, evaluate_fresh_goals

    class StandStill:
        def __call__(self, params, state, goal):
            return jnp.zeros(17)

        def __hash__(self):
            return 17

        def __eq__(self, other):
            return isinstance(other, StandStill)

    out = evaluate_fresh_goals(make("humanoid"), Policy(StandStill(), None), jax.random.key(0), 8)
    assert 1.0 >= out["easy_success"] >= out["success"] >= 0.0
    assert out["easy_success"] > 0.0  # goals at 1-5: some start within 2.0 of the torso
