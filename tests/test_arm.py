"""The paper's Franka Panda tasks: env contract on both backends, model, expert, bad input."""

from __future__ import annotations

import importlib.util
import sys

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

from crlkit.envs import list_envs, make, make_spec
from crlkit.envs.arm import ARM_TASKS, action_to_ctrl

ARM_ENVS = tuple(ARM_TASKS)
needs_extra = pytest.mark.skipif(
    importlib.util.find_spec("gymnasium_robotics") is None,
    reason="the arm extra (gymnasium-robotics) is not installed",
)


def test_arm_envs_are_registered_with_the_paper_facts():
    for name in ARM_ENVS:
        assert name in list_envs()
        spec = make_spec(name.replace("-", "_"), backend="native")  # spec needs no model
        assert (spec.state_dim, spec.goal_dim, spec.action_dim) == (17, 3, 5)
        assert spec.goal_indices == (0, 1, 2) and spec.success_radius == 0.1
        assert spec.episode_length == 1000 and spec.control_dt == pytest.approx(0.05)
        assert spec.family == "arm" and spec.body == "panda"


def test_action_maps_to_the_papers_ctrl():
    low = np.asarray(action_to_ctrl(jnp.array([-1.0, -1, -1, -1, 1])))
    high = np.asarray(action_to_ctrl(jnp.array([1.0, 1, 1, 1, -1])))
    np.testing.assert_allclose(low[:7], [0.3491, 0, 0, -3.0718, 0, 2.3562, 1.4487], atol=1e-6)
    np.testing.assert_allclose(
        high[:7], [2.7925, 1.48353, 0, -0.0698, 0, 3.7525, 1.4487], atol=1e-6
    )
    assert list(low[7:]) == [0.0, 0.0] and list(high[7:]) == [255.0, 255.0]  # >0 closes


@needs_extra
def test_model_matches_the_published_panda_kinematics():
    from crlkit.envs.arm import build_model
    from crlkit.envs.arm_model import published_link_offsets

    m = build_model("arm-binpick-hard")
    # Franka's published offsets: d1 0.333, d3 0.316, a4 0.0825, a5 -0.0825 / d5 0.384, a7 0.088.
    want = [
        [0, 0, 0.333],
        [0, 0, 0],
        [0, -0.316, 0],
        [0.0825, 0, 0],
        [-0.0825, 0.384, 0],
        [0, 0, 0],
        [0.088, 0, 0],
    ]
    np.testing.assert_allclose(published_link_offsets(m), want, atol=1e-9)
    assert m.opt.timestep == 0.002 and m.opt.iterations == 6 and m.opt.impratio == 10.0
    assert m.npair == 40 and m.nu == 9 and m.nq == 16  # 7 arm + 2 fingers + cube free joint


# MJX on a CPU compiles the arm's scene for one to two minutes: its cases are slow tests (one
# task each; the native backend covers every task in the fast suite).
MJX_ON_CPU = pytest.mark.slow


@needs_extra
@pytest.mark.parametrize(
    "name, backend",
    [
        *[(name, "native") for name in ARM_ENVS],
        pytest.param("arm-binpick-hard", "mjx", marks=MJX_ON_CPU),  # the richest scene
    ],
)
def test_jitted_reset_and_step(name, backend):
    env = make(name, backend=backend, episode_length=3)
    s = jax.jit(env.reset_batch, static_argnums=1)(jax.random.key(0), 4)
    actions = jax.random.uniform(jax.random.key(1), (4, 5), minval=-1.0)
    step = jax.jit(env.step_batch)
    for _ in range(4):  # crosses the episode limit: an auto-reset happens
        s = step(s, actions)
    assert s.obs.shape == (4, 20) and s.goal.shape == (4, 3)
    assert np.isfinite(np.asarray(s.obs)).all()
    task = ARM_TASKS[name]
    goal = np.asarray(s.goal)
    centre = np.asarray(task.goal_centre)
    assert (np.abs(goal[:, :2] - centre[:2]) <= task.goal_noise + 1e-6).all()
    np.testing.assert_allclose(goal[:, 2], 0.03)
    np.testing.assert_array_equal(s.obs[:, 17:], s.goal)


@needs_extra
def test_observation_is_the_papers_state():
    env = make("arm-push-easy", backend="native").unwrapped
    s = env.reset(jax.random.key(3))
    obs, m = np.asarray(s.obs), env.mj_model
    d = mujoco.MjData(m)
    d.qpos[:] = s.physics.qpos
    mujoco.mj_forward(m, d)
    np.testing.assert_allclose(obs[:3], d.qpos[9:12], atol=1e-6)  # cube xyz
    np.testing.assert_allclose(obs[3:10], [1.571, 0.742, 0, -1.571, 0, 3.054, 1.449], atol=1e-6)
    np.testing.assert_allclose(obs[10:13], d.body("link7").xpos, atol=1e-5)
    assert obs[16] == pytest.approx(0.08, abs=1e-5)  # both fingers open 0.04 at reset
    cube0 = np.asarray(ARM_TASKS["arm-push-easy"].scene.cube_start)
    assert np.abs(obs[:2] - cube0[:2]).max() <= 0.1 and obs[2] == pytest.approx(0.07)


def _trajectory(name: str, backend: str, unlimited=False, steps: int = 5) -> np.ndarray:
    """Observations of `steps` random-action control steps from one reset, on `backend` (with
    `unlimited`, the actuators' force limits off)."""
    import copy

    from crlkit.envs import arm
    from crlkit.envs.backends import make_backend

    spec = make_spec(name, backend)
    model = copy.deepcopy(arm.build_model(name))
    if unlimited:
        model.actuator_forcelimited[:] = 0
    env = arm.ArmEnv(spec, ARM_TASKS[name], make_backend(backend, model, arm.FRAME_SKIP), model)
    actions = jax.random.uniform(jax.random.key(1), (steps, 5), minval=-1.0)

    def body(s, a):
        s = env.step(s, a)
        return s, s.obs

    run = jax.jit(lambda k: jax.lax.scan(body, env.reset(k), actions)[1])
    return np.asarray(run(jax.random.key(0)))


@needs_extra
@MJX_ON_CPU
@pytest.mark.parametrize("name", ["arm-binpick-hard"])  # the richest scene: walls, 40 pairs
def test_mjx_and_native_agree_without_force_limits(name):
    """Same scene, state and actions: with the actuators' force limits off, where MuJoCo C and
    MJX integrate implicitfast alike, the two backends agree step by step, contacts and all."""
    native = _trajectory(name, "native", unlimited=True)
    mjx = _trajectory(name, "mjx", unlimited=True)
    # Cube, joint angles and end-effector position; velocities are looser (contact solver).
    np.testing.assert_allclose(native[:, :13], mjx[:, :13], atol=2e-3)
    np.testing.assert_allclose(native[:, 13:16], mjx[:, 13:16], atol=5e-2)


@needs_extra
@MJX_ON_CPU
def test_native_differs_from_mjx_only_through_clamped_actuators():
    """The paper's scenes use implicitfast. MJX always integrates actuator damping (kv) implicitly;
    MuJoCo C drops it for actuators at their force limit (87 N m, 12 N m here, reached by most
    large moves), so the backends part there (docs/envs.md). Where no actuator saturates they
    agree: one physics step from the settled pose of action 0."""
    from mujoco import mjx

    from crlkit.envs import arm

    m = arm.build_model("arm-push-easy")
    d = mujoco.MjData(m)
    d.ctrl[:] = np.asarray(action_to_ctrl(jnp.zeros(5)))
    d.qpos[:9] = arm.ARM_HOME
    for _ in range(2000):  # settle: every actuator force inside its range
        mujoco.mj_step(m, d)
    assert (np.abs(d.actuator_force[:7]) < m.actuator_forcerange[:7, 1] - 1).all()
    dx = jax.jit(mjx.step)(mjx.put_model(m), mjx.put_data(m, d))
    mujoco.mj_step(m, d)
    np.testing.assert_allclose(np.asarray(dx.qpos), d.qpos, atol=1e-6)
    # From the home pose joint 6 is far from its settled angle: its actuator saturates (-12 N m)
    # and one control step apart the two integrators disagree visibly.
    native = _trajectory("arm-push-easy", "native", steps=1)
    mjx_obs = _trajectory("arm-push-easy", "mjx", steps=1)
    assert np.abs(native[0, 3:10] - mjx_obs[0, 3:10]).max() > 0.05


def test_missing_extra_names_it(monkeypatch):
    from crlkit.envs import arm

    arm.build_model.cache_clear()
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda n, *a: None if n == "gymnasium_robotics" else real(n, *a),
    )
    monkeypatch.setitem(sys.modules, "gymnasium_robotics", None)
    with pytest.raises(ValueError, match=r"pip install 'crlkit\[arm\]'") as err:
        make("arm-push-easy", backend="native")
    assert "\n" not in str(err.value)
    arm.build_model.cache_clear()


# (env, episode steps, bar): issue 17's bars over 50 episodes (cube within 0.1 at least once) in
# the tasks' default episode length (1000, Table 1's). Measured (seed 0): 0.92, 0.58, 0.80.
# Push-hard's bar is below the 0.9 because no policy can reach that: see the next test.
EXPERT_BARS = [
    ("arm-push-easy", 1000, 0.9),
    ("arm-push-hard", 1000, 0.5),
    ("arm-binpick-hard", 1000, 0.7),
]


@needs_extra
@pytest.mark.slow
@pytest.mark.parametrize("name,steps,bar", EXPERT_BARS)
def test_expert_reaches_the_goal(name, steps, bar):
    from crlkit.collect.arm_expert import expert_success

    result = expert_success(make(name, backend="native"), num_episodes=50, steps=steps, seed=0)
    assert result["success"] >= bar, result


@needs_extra
def test_push_hard_puts_cubes_out_of_the_arms_reach():
    """The paper's actuators settle joints 4 and 6 at 0.57x / 0.5x of their commands, so the arm
    reaches an annulus of the table: push-hard draws cubes or goals outside it in more than 10%
    of episodes, where no policy can succeed; push-easy and binpick-hard never do."""
    from crlkit.collect.arm_expert import reach_miss

    def out_of_reach(name):
        env = make(name, backend="native")
        s = jax.vmap(env.unwrapped.reset)(jax.random.split(jax.random.key(0), 100))
        # A cube the grip cannot come within 0.08 of cannot be touched; a goal 0.18 beyond the
        # grip's reach cannot get a pushed cube (at most ~0.06 ahead of it) within 0.1.
        cube, goal = reach_miss(env, s.obs[:, :2]), reach_miss(env, s.goal[:, :2])
        return float(((cube > 0.08) | (goal > 0.18)).mean())

    assert out_of_reach("arm-push-hard") > 0.1
    assert out_of_reach("arm-push-easy") == 0.0 and out_of_reach("arm-binpick-hard") == 0.0


@needs_extra
def test_expert_policy_signature_and_range():
    from crlkit.collect.arm_expert import make_arm_expert

    env = make("arm-binpick-hard", backend="native")
    policy = make_arm_expert(env)
    s = env.reset_batch(jax.random.key(2), 3)
    a = jax.jit(jax.vmap(policy, in_axes=(0, None, 0)))(
        s, jnp.zeros(2), jax.random.split(jax.random.key(0), 3)
    )
    assert a.shape == (3, 5) and float(jnp.abs(a).max()) <= 1.0
    with pytest.raises(ValueError, match="arm envs"):
        make_arm_expert(make("pointmaze-medium", backend="native"))


@pytest.mark.slow  # collects with the expert, then trains and evaluates offline: ~1-4 min
def test_expert_dataset_trains_offline(tmp_path):
    """`crlkit collect --env arm-push-easy --policy expert --format ogbench` -> `crlkit offline`."""
    import json

    from click.testing import CliRunner
    from crlkit.cli.main import cli

    data = tmp_path / "arm-push-easy-expert.npz"
    result = CliRunner().invoke(
        cli,
        [
            "collect",
            "--env",
            "arm-push-easy",
            "--policy",
            "expert",
            "--steps",
            "100",
            "--episode-length",
            "25",
            "--num-envs",
            "2",
            "--format",
            "ogbench",
            "--out",
            str(data),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    out = tmp_path / "run"
    result = CliRunner().invoke(
        cli,
        [
            "offline",
            "--dataset",
            str(data),
            "--steps",
            "2",
            "--batch-size",
            "16",
            "--width",
            "16",
            "--eval-episodes",
            "1",
            "--out",
            str(out),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert config["offline"]["goal_space"] == "slice"  # the cube xyz: no OGBench env for arms
    assert config["dataset"]["goal_indices"] == [0, 1, 2] and 0.0 <= summary["eval/success"] <= 1
