"""Data parallel over 2 forced host devices: the same global batch gives the same SGD steps as one
device, bare `crlkit online` learns there and records `devices: 2`, and sizes that do not split
are one-line errors.

Each check runs in a subprocess: the device count is fixed when JAX starts."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from conftest import xla_env

CLI = "from crlkit.cli.main import cli; cli()"
TWO_DEVICES = xla_env(devices=2)

# The first SGD updates of the online epoch on a replay filled by a one-device prefill step: once
# with every array on one device, once with envs/replay split over 2 devices.
SAME_BATCH = textwrap.dedent(
    """
    import dataclasses, json
    import jax, jax.numpy as jnp, numpy as np
    from crlkit.config import LearnerConfig, NetworkConfig
    from crlkit.train.online import epoch as E
    from crlkit.train.online.config import OnlineConfig
    from crlkit.train.offline.chunks import Carry, make_device_chunk
    from crlkit.train.offline.sampling import DeviceData
    from crlkit.train.parallel import replicated

    cfg = OnlineConfig(env="pointmaze-arena", num_envs=4, unroll_length=10, batch_size=16,
                       updates_per_step=3, replay_steps_per_env=100, prefill_steps=10)
    lcfg = LearnerConfig(network=NetworkConfig(width=16, critic_depth=4, actor_depth=4))
    two = E.make_setup(cfg, lcfg)
    one = dataclasses.replace(two, mesh=None)
    state = jax.jit(lambda k: E.init_state(one, k))(jax.random.PRNGKey(0))
    state, _ = E.jitted_epoch(one, state, jnp.int32(1))  # prefill: data, no updates
    split = jax.device_put(state, two.shardings(state))
    updates = jax.jit(E._updates, static_argnums=0)
    key = jax.random.PRNGKey(5)
    a = updates(one, state.learner, state.replay, key)
    b = updates(two, split.learner, split.replay, key)
    out = {"online": {k: [float(a[2][k]), float(b[2][k])] for k in a[2]},
           "devices": str(split.replay.data["state"].sharding.spec)}
    leaves = zip(jax.tree.leaves(a[0].critic.params), jax.tree.leaves(b[0].critic.params))
    out["param_diff"] = max(float(jnp.max(jnp.abs(x - y))) for x, y in leaves)

    # offline: the device-sampled minibatch from a replicated dataset, split over 2 devices
    rng = np.random.default_rng(0)
    data = DeviceData(
        observations=rng.normal(size=(64, 4)).astype(np.float32),
        actions=rng.uniform(-1, 1, size=(64, 2)).astype(np.float32),
        goals=rng.normal(size=(64, 2)).astype(np.float32),
        episode_ends=np.repeat(np.arange(15, 64, 16), 16).astype(np.int32),
        valid_rows=np.array([i for i in range(64) if i % 16 != 15], np.int32))
    from crlkit import learner
    from crlkit.train.offline.config import OfflineConfig
    ocfg = OfflineConfig(dataset="x", batch_size=16, discount=0.99, actor_p_random=0.0)
    ol = dataclasses.replace(lcfg, actor_loss="ddpg_bc")
    nets = learner.make_networks(ol, learner.Dims(4, 2, 2))
    carry = Carry(learner.init(nets, ol, learner.Dims(4, 2, 2), jax.random.PRNGKey(1)),
                  jax.random.PRNGKey(2))
    rep = replicated(two.mesh)
    carry2 = jax.device_put(jax.tree.map(np.asarray, carry), rep)  # before carry is donated
    r1 = make_device_chunk(nets, ol, ocfg)(carry, data, jnp.int32(3))
    r2 = make_device_chunk(nets, ol, ocfg, two.mesh)(carry2, jax.device_put(data, rep),
                                                     jnp.int32(3))
    out["offline"] = {k: [float(r1[1][k]), float(r2[1][k])] for k in r1[1]}
    try:
        E.make_setup(dataclasses.replace(cfg, batch_size=15), lcfg)
    except ValueError as err:
        out["error"] = str(err)
    print("RESULT" + json.dumps(out))
    """
)


def _result(script: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", script],
        env=TWO_DEVICES,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT"))
    return json.loads(line[len("RESULT") :])


@pytest.mark.slow  # compiles the online updates and the offline chunk twice each: ~1 min
def test_two_devices_take_the_same_sgd_steps_as_one_device_on_the_same_global_batch():
    out = _result(SAME_BATCH)
    assert out["devices"] == "P(None, 'data')"  # the replay really is split
    for where in ("online", "offline"):
        for name, (one, two) in out[where].items():
            assert two == pytest.approx(one, rel=1e-5, abs=1e-5), (where, name)
    assert out["online"]["critic_loss"][0] > 0  # real updates ran (3 summed losses)
    assert out["param_diff"] < 1e-5
    assert out["error"] == (
        "--batch-size 15 does not split over 2 devices; use a multiple of 2 (e.g. 14 or 16)"
    )


@pytest.mark.slow  # the bare quickstart run on 2 devices: ~2-3 min
def test_bare_online_learns_on_two_devices_and_checkpoints_with_orbax(tmp_path):
    """Bare `crlkit online` (the quickstart preset, envs and batch split 16 + 16 and 128 + 128)
    reaches fresh-goal success >= 0.8 sharded over 2 devices, as it does on one."""
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-c", CLI, "online", "--out", str(out)],
        env=TWO_DEVICES,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "compiling the training epoch on 2 device(s) ..." in proc.stderr
    assert "compiled in" in proc.stderr and "evaluated in" in proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["devices"], summary["processes"]) == (2, 1)
    assert summary["env"] == "pointmaze-arena" and summary["eval/success"] >= 0.8, summary
    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert names and all(n.startswith("ckpt_") for n in names), names
    assert {p.name for p in (out / "checkpoints" / names[-1]).iterdir()} >= {"state", "meta"}
