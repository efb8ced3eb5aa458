"""The `spring` backend against Brax's own spring envs (skipped when brax is not installed).

crlkit's `ant` and `humanoid` are stepped next to `brax.envs.get_environment(..., backend="spring")`
from identical physics states: next physics state and observation must agree to float tolerance.
Brax's humanoid has no target body (the paper's has one, whose two slide joints sit at the end of
qpos/qvel), so its physics and observation are compared on the humanoid's own entries, and the
full 268-dim paper state is checked against Brax's observation code run on crlkit's system.
"""

from __future__ import annotations

import warnings

import jax
import numpy as np
import pytest

from crlkit.envs import make
from crlkit.envs.registry import available_backends, make_spec

pytestmark = pytest.mark.skipif(
    "spring" not in available_backends(),
    reason="brax is not installed (pip install 'crlkit[brax]'): spring parity not checked",
)


def _brax_env(name: str):
    from brax import envs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return envs.get_environment(
            name, backend="spring", exclude_current_positions_from_observation=False
        )


def _step_both(name: str, brax_q: slice, brax_qd: slice, steps: int = 3, seed: int = 0):
    """Rolls crlkit's env and Brax's env side by side from crlkit's reset state."""
    env = make(name, backend="spring").unwrapped
    benv = _brax_env(name)
    ours = jax.jit(env.reset)(jax.random.key(seed))
    theirs = benv.reset(jax.random.key(seed))
    q, qd = ours.physics.qpos[brax_q], ours.physics.qvel[brax_qd]
    theirs = theirs.replace(pipeline_state=benv.pipeline_init(q, qd))
    step, bstep = jax.jit(env.step), jax.jit(benv.step)
    actions = jax.random.uniform(jax.random.key(seed + 1), (steps, env.spec.action_dim), minval=-1)
    pairs = []
    for a in actions:
        ours, theirs = step(ours, a), bstep(theirs, a)
        pairs.append((ours, theirs))
    return env, pairs


def test_ant_steps_as_brax_spring_ant():
    env, pairs = _step_both("ant", slice(None), slice(None))
    assert env.spec.state_dim == 29
    for ours, theirs in pairs:
        ps = theirs.pipeline_state
        np.testing.assert_allclose(ours.physics.qpos, ps.q, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(ours.physics.qvel, ps.qd, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(ours.physics.xpos[1:], ps.x.pos, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(ours.obs[:29], theirs.obs, rtol=1e-4, atol=1e-4)


def test_humanoid_steps_as_brax_spring_humanoid():
    env, pairs = _step_both("humanoid", slice(0, 24), slice(0, 23))
    for ours, theirs in pairs:
        ps, obs = theirs.pipeline_state, ours.obs
        np.testing.assert_allclose(ours.physics.qpos[:24], ps.q, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(ours.physics.qvel[:23], ps.qd, rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(ours.physics.xpos[1:12], ps.x.pos, rtol=1e-4, atol=1e-5)
        # Positions and velocities, then actuator forces (the last 25 state entries).
        np.testing.assert_allclose(obs[:24], theirs.obs[:24], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(obs[26:49], theirs.obs[24:47], rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(obs[243:266], theirs.obs[223:246], rtol=1e-4, atol=1e-3)
        assert float(ours.done) == float(theirs.done)


def test_humanoid_state_is_brax_observation_of_the_paper_model():
    """All 268 state entries equal Brax's humanoid `_get_obs` on crlkit's system (with target)."""
    env = make("humanoid", backend="spring").unwrapped
    benv = _brax_env("humanoid")
    benv.sys = env.backend.sys  # Brax's observation code over the paper's 12-link system
    s = jax.jit(env.reset)(jax.random.key(3))
    a = jax.random.uniform(jax.random.key(4), (17,), minval=-1)
    nxt = jax.jit(env.step)(s, a)
    theirs = benv._get_obs(nxt.physics.extra, 0.4 * a)  # the paper scales actions by 0.4
    assert make_spec("humanoid").state_dim == theirs.shape[0] == 268
    np.testing.assert_allclose(nxt.obs[:268], theirs, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(nxt.goal[:2], nxt.physics.qpos[-2:], atol=1e-5)


def test_spring_is_refused_for_ogbench_bodies():
    with pytest.raises(ValueError, match="valid: auto, mjx, native, warp"):
        make("antmaze-medium", backend="spring")


def test_importing_brax_prints_nothing():
    """brax's import of mujoco.mjx.warp prints two 'Failed to import warp' lines without Warp."""
    import subprocess
    import sys

    code = "from crlkit.envs.backends.spring import _import_brax; _import_brax(); print('ok')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok\n" and "Failed to import" not in done.stderr
