"""Physics backends: native against MuJoCo C, purity under jit/vmap/scan, mjx/warp consistency."""

from __future__ import annotations

import json
import sys

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

from crlkit.envs import make
from crlkit.envs.backends import make_backend, resolve_backend
from crlkit.envs.backends.native import NativeBackend
from crlkit.envs.bodies import FRAME_SKIP
from crlkit.envs.registry import build_model

# One env per body; the maze ones carry walls, the humanoid carries sensors.
BODY_ENVS = ("pointmaze-medium", "antmaze-medium", "humanoidmaze-medium")


def _random_states(m: mujoco.MjModel, n: int, seed: int = 0):
    """float32 (qpos, qvel, act, time, warmstart, ctrl) batches around qpos0, in the air or not."""
    rng = np.random.default_rng(seed)
    qpos = (m.qpos0 + rng.uniform(-0.1, 0.1, (n, m.nq))).astype(np.float32)
    qvel = rng.normal(0.0, 0.5, (n, m.nv)).astype(np.float32)
    act = np.zeros((n, m.na), np.float32)
    time = rng.uniform(0.0, 5.0, n).astype(np.float32)
    warm = rng.normal(0.0, 1.0, (n, m.nv)).astype(np.float32)
    ctrl = rng.uniform(-1.0, 1.0, (n, m.nu)).astype(np.float32)
    return qpos, qvel, act, time, warm, ctrl


def _stage_mask(m: mujoco.MjModel) -> np.ndarray:
    """Boolean mask over sensordata of the position/velocity-stage sensors (the contract's)."""
    mask = np.zeros(m.nsensordata, bool)
    for i in range(m.nsensor):
        if m.sensor_needstage[i] <= int(mujoco.mjtStage.mjSTAGE_VEL):
            mask[m.sensor_adr[i] : m.sensor_adr[i] + m.sensor_dim[i]] = True
    return mask


def _c_step(m, qpos, qvel, act, time, warm, ctrl, n_substeps):
    """Reference: plain MuJoCo C, float64, then mj_forward for kinematics and sensors."""
    d = mujoco.MjData(m)
    d.qpos[:], d.qvel[:], d.act[:], d.time = qpos, qvel, act, time
    d.qacc_warmstart[:], d.ctrl[:] = warm, ctrl
    mujoco.mj_step(m, d, n_substeps)
    after = (d.qpos.copy(), d.qvel.copy(), d.time, d.qacc_warmstart.copy())
    mujoco.mj_forward(m, d)
    return after, d.xpos.copy(), d.sensordata.copy()


@pytest.mark.parametrize("name", BODY_ENVS)
def test_native_step_equals_mujoco_c(name):
    m = build_model(name)
    backend = NativeBackend(m, FRAME_SKIP)
    qpos, qvel, act, time, warm, ctrl = _random_states(m, 6)
    init = jax.vmap(backend.init)(qpos, qvel)
    state = init.replace(act=jnp.asarray(act), time=jnp.asarray(time), qacc_warmstart=warm)
    out = jax.jit(jax.vmap(backend.step))(state, ctrl)
    mask = _stage_mask(m)
    for i in range(6):
        (q, v, t, w), xpos, sensors = _c_step(
            m, qpos[i], qvel[i], act[i], time[i], warm[i], ctrl[i], FRAME_SKIP
        )
        np.testing.assert_allclose(out.qpos[i], q, rtol=0, atol=1e-6)
        np.testing.assert_allclose(out.qvel[i], v, rtol=1e-6, atol=1e-5)
        np.testing.assert_allclose(out.time[i], t, rtol=1e-6)
        np.testing.assert_allclose(out.qacc_warmstart[i], w, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(out.xpos[i], xpos, rtol=0, atol=1e-6)
        np.testing.assert_allclose(out.sensordata[i][mask], sensors[mask], rtol=1e-5, atol=1e-5)
    assert out.qpos.dtype == jnp.float32 and out.sensordata.shape == (6, m.nsensordata)


@pytest.mark.parametrize("name", ["humanoidmaze-medium"])
def test_native_init_does_kinematics_and_sensors(name):
    m = build_model(name)
    qpos, qvel, *_ = _random_states(m, 3, seed=1)
    s = jax.jit(jax.vmap(NativeBackend(m, FRAME_SKIP).init))(qpos, qvel)
    d = mujoco.MjData(m)
    mask = _stage_mask(m)
    for i in range(3):
        d.qpos[:], d.qvel[:] = qpos[i], qvel[i]
        mujoco.mj_forward(m, d)
        np.testing.assert_allclose(s.xpos[i], d.xpos, rtol=0, atol=1e-6)
        np.testing.assert_allclose(s.sensordata[i][mask], d.sensordata[mask], atol=1e-5)
    assert float(jnp.abs(s.time).max()) == 0.0 and float(jnp.abs(s.qacc_warmstart).max()) == 0.0
    np.testing.assert_array_equal(s.qpos, qpos)


def test_native_init_skips_rows_not_needed():
    m = build_model("humanoidmaze-medium")
    backend = NativeBackend(m, FRAME_SKIP)
    qpos, qvel, *_ = _random_states(m, 4, seed=4)
    full = jax.vmap(backend.init)(qpos, qvel)
    needed = jnp.array([True, False, True, False])
    part = jax.jit(jax.vmap(backend.init))(qpos, qvel, needed)
    for field in ("qpos", "qvel", "xpos", "sensordata"):
        got, want = np.asarray(getattr(part, field)), np.asarray(getattr(full, field))
        np.testing.assert_array_equal(got[[0, 2]], want[[0, 2]])
    np.testing.assert_array_equal(part.qpos[1], qpos[1])  # skipped rows pass the state through
    assert np.abs(np.asarray(part.xpos)[[1, 3]]).max() == 0.0 and np.abs(full.xpos[1]).max() > 0
    none = jax.jit(jax.vmap(backend.init))(qpos, qvel, jnp.zeros(4, bool))
    np.testing.assert_array_equal(none.qpos, qpos)


def test_auto_reset_resets_exactly_the_done_envs_on_native():
    """Envs that end get the full fresh reset (as if computed alone); the others step on."""
    env = make("humanoidmaze-medium", backend="native", episode_length=3)
    bare = env.unwrapped
    s = env.reset_batch(jax.random.key(5), 4)
    s = s.replace(steps=jnp.array([2, 0, 2, 1], jnp.int32))  # envs 0 and 2 end on this step
    action = jnp.zeros((4, 21))
    out = jax.jit(env.step_batch)(s, action)
    stepped = jax.jit(jax.vmap(bare.step))(s, action)
    fresh = jax.jit(jax.vmap(bare.reset))(jax.vmap(lambda k: jax.random.split(k)[1])(s.rng))
    np.testing.assert_array_equal(out.done, [1.0, 0.0, 1.0, 0.0])
    for i, want in ((0, fresh), (1, stepped), (2, fresh), (3, stepped)):
        np.testing.assert_array_equal(out.physics.qpos[i], want.physics.qpos[i])
        np.testing.assert_array_equal(out.physics.xpos[i], want.physics.xpos[i])
        # The observation's float32 arithmetic may fuse differently across the three programs.
        np.testing.assert_allclose(out.obs[i], want.obs[i], rtol=0, atol=1e-5)


def test_native_is_pure_under_vmap_scan_and_threads():
    m = build_model("antmaze-medium")
    two, one = NativeBackend(m, FRAME_SKIP, num_threads=2), NativeBackend(m, FRAME_SKIP, 1)
    qpos, qvel, *_ = _random_states(m, 6, seed=2)
    ctrls = np.random.default_rng(3).uniform(-1, 1, (4, 6, m.nu)).astype(np.float32)
    s0 = jax.vmap(two.init)(qpos, qvel)

    def rollout(backend):
        def body(s, c):
            s = jax.vmap(backend.step)(s, c)
            return s, s.qpos

        return jax.jit(lambda s: jax.lax.scan(body, s, ctrls))(s0)

    final, qs = rollout(two)
    _, qs_again = rollout(two)
    _, qs_one_thread = rollout(one)
    np.testing.assert_array_equal(qs, qs_again)  # same inputs, same outputs
    np.testing.assert_array_equal(qs, qs_one_thread)  # threading does not change results
    # A Python loop of jitted steps equals the scan.
    step = jax.jit(jax.vmap(two.step))
    s = s0
    for t in range(4):
        s = step(s, ctrls[t])
    np.testing.assert_array_equal(s.qpos, final.qpos)
    # Nested vmap (2 x 3) equals the flat batch of 6.
    nested = jax.vmap(jax.vmap(two.step))
    s2 = jax.tree.map(lambda x: x.reshape(2, 3, *x.shape[1:]), s0)
    out = jax.jit(nested)(s2, ctrls[0].reshape(2, 3, -1))
    flat = step(s0, ctrls[0])
    np.testing.assert_array_equal(out.qpos.reshape(6, -1), flat.qpos)


@pytest.mark.parametrize("name", ["pointmaze-medium", "ant", "humanoid"])
def test_native_trajectory_tracks_float64_mujoco(name):
    """30 control steps through the env API stay within 1e-4 of an uninterrupted float64 run."""
    env = make(name, backend="native").unwrapped
    horizon = 30
    actions = jax.random.uniform(jax.random.key(1), (horizon, env.spec.action_dim), minval=-1)
    s0 = env.reset(jax.random.key(0))

    def body(s, a):
        s = env.step(s, a)
        return s, s.physics.qpos

    qs = np.asarray(jax.jit(lambda s: jax.lax.scan(body, s, actions)[1])(s0))
    m = env.mj_model
    d = mujoco.MjData(m)
    d.qpos[:], d.qvel[:] = s0.physics.qpos, s0.physics.qvel
    for t in range(horizon):
        p, ctrl = env.body.control(
            s0.physics.replace(qpos=d.qpos.copy(), qvel=d.qvel.copy()), actions[t]
        )
        d.qpos[:], d.qvel[:], d.ctrl[:] = p.qpos, p.qvel, ctrl
        mujoco.mj_step(m, d, env.body.frame_skip)
        np.testing.assert_allclose(qs[t], d.qpos, rtol=0, atol=1e-4, err_msg=f"step {t}")


# (env, horizon in control steps, qpos tolerance): how long mjx and native agree, measured
# (docs/backends.md). Contacts make the ant diverge fastest (it lands on its legs at step ~3).
CONSISTENCY = [("pointmaze-medium", 50, 1e-4), ("ant", 10, 0.1), ("humanoid", 20, 2e-3)]


def _trajectory(name: str, backend: str, horizon: int):
    env = make(name, backend=backend).unwrapped
    actions = jax.random.uniform(jax.random.key(1), (horizon, env.spec.action_dim), minval=-1)

    def body(s, a):
        s = env.step(s, a)
        return s, (s.physics.qpos, s.physics.xpos, s.obs)

    run = jax.jit(lambda key: jax.lax.scan(body, env.reset(key), actions)[1])
    return [np.asarray(x) for x in run(jax.random.key(0))]


@pytest.mark.slow
@pytest.mark.parametrize("name,horizon,tol", CONSISTENCY)
def test_mjx_and_native_agree_over_short_horizon(name, horizon, tol):
    native = _trajectory(name, "native", horizon)
    mjx = _trajectory(name, "mjx", horizon)
    for label, a, b in zip(("qpos", "xpos"), native[:2], mjx[:2], strict=True):
        err = np.abs(a - b).reshape(horizon, -1).max(axis=1)
        assert err.max() <= tol, f"{label}: max error per step {np.round(err, 5).tolist()}"
    assert native[2].shape == mjx[2].shape


@pytest.mark.slow
def test_warp_and_native_agree_on_point():
    pytest.importorskip("warp")
    native = _trajectory("pointmaze-medium", "native", 10)
    warp = _trajectory("pointmaze-medium", "warp", 10)
    np.testing.assert_allclose(native[0], warp[0], atol=1e-4)


def test_warp_without_extra_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "warp", None)  # what a machine without warp-lang sees
    with pytest.raises(ValueError, match=r"pip install 'crlkit\[warp\]'") as err:
        make_backend("warp", build_model("pointmaze-medium"), FRAME_SKIP)
    assert "\n" not in str(err.value)


def test_auto_is_native_on_cpu():
    if jax.default_backend() != "cpu":
        pytest.skip("auto picks mjx on accelerators")
    assert resolve_backend("auto") == "native"
    assert make("pointmaze-medium").spec.backend == "native"


def test_bench_env_cli_writes_a_row(tmp_path):
    from click.testing import CliRunner
    from crlkit.cli.main import cli

    path = tmp_path / "row.json"
    args = ["bench", "env", "--env", "pointmaze-medium", "--backend", "native", "--num-envs", "8"]
    args += ["--steps", "5", "--repeats", "1", "--baseline-envs", "2", "--json", str(path)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    row = json.loads(path.read_text())
    assert row["backend"] == "native" and row["num_envs"] == 8 and row["n_substeps"] == FRAME_SKIP
    assert row["physics_steps_per_s"] == pytest.approx(row["env_steps_per_s"] * FRAME_SKIP, 1e-3)
    assert row["single_thread_physics_steps_per_s"] > 0 and row["ratio_to_single_thread"] > 0


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--backend", "bullet"], "bullet"),
        (["--env", "antmze-large"], "antmaze-large"),
        (["--num-envs", "0"], "--num-envs"),
    ],
)
def test_bench_env_cli_bad_input_is_one_line(args, needle):
    from click.testing import CliRunner
    from crlkit.cli.main import cli

    result = CliRunner().invoke(cli, ["bench", "env", *args])
    assert result.exit_code == 2
    assert needle in result.output and "Traceback" not in result.output


def test_bench_env_cli_warp_without_extra(monkeypatch):
    from click.testing import CliRunner
    from crlkit.cli.main import cli

    monkeypatch.setitem(sys.modules, "warp", None)
    result = CliRunner().invoke(
        cli, ["bench", "env", "--env", "pointmaze-medium", "--backend", "warp", "--steps", "1"]
    )
    assert result.exit_code == 2
    assert "pip install 'crlkit[warp]'" in result.output
