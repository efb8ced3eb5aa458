"""The online loop's compiled part: state, one jitted epoch of training steps.

```
epoch(setup, state, n)   jitted once per setup; a lax.while_loop over n training steps (n is
                         traced, so any budget or event spacing reuses the one compiled program)
  training step          scan over unroll_length env steps with the stochastic actor
                         -> replay insert -> scan over updates_per_step of
                            [sample minibatch + geometric future goal -> learner.update]
                         (no updates during the first prefill_train_steps: replay prefill)
```

On several devices (`setup.mesh`, see crlkit/train/parallel.py) envs and replay are split over
the data axis, the unroll runs under `shard_map` (each device steps its own envs), and sampling
and updates see the global arrays, so a minibatch of B is the same global batch as on one device.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from crlkit import learner as learner_lib
from crlkit.config import LearnerConfig
from crlkit.data import replay as replay_lib
from crlkit.envs.api import EnvState
from crlkit.train import parallel
from crlkit.train.online.config import OnlineConfig


@flax.struct.dataclass
class OnlineState:
    """Everything that continues a run: learner, envs, replay, RNG and counters.

    Attributes:
      learner: params, optimizer states, log alpha, SGD step, learner RNG.
      env: [num_envs] batched env state (physics, goals, per-env reset RNG).
      replay: the trajectory ring buffer (None in a checkpoint saved without it).
      key: the loop's RNG (exploration noise, minibatch sampling).
      train_steps: [] int32 training steps done.
      nonfinite_step: [] int32 SGD update (1-based) that was not finite, -1 while none was.
    """

    learner: learner_lib.CRLState
    env: EnvState
    replay: replay_lib.ReplayState | None
    key: jax.Array
    train_steps: jax.Array
    nonfinite_step: jax.Array


@flax.struct.dataclass
class EpochStats:
    """Sums over an epoch, reduced to means on the host (`_epoch_metrics`)."""

    learner: dict[str, jax.Array]  # sums of each learner metric over accepted updates
    updates: jax.Array  # accepted SGD updates
    at_goal: jax.Array  # env steps of the training rollouts spent within the success radius
    episodes: jax.Array  # training episodes that ended


@dataclasses.dataclass(frozen=True)
class EpochSettings:
    """The online settings the jitted epoch reads (budget and event spacing are the host's)."""

    num_envs: int
    unroll_length: int
    batch_size: int
    updates_per_step: int
    gamma: float
    replay_steps_per_env: int
    prefill_train_steps: int

    @classmethod
    def of(cls, cfg: OnlineConfig) -> EpochSettings:
        """The epoch's part of a run's config."""
        return cls(
            cfg.num_envs,
            cfg.unroll_length,
            cfg.batch_size,
            cfg.updates_per_step,
            cfg.gamma,
            cfg.replay_steps_per_env,
            cfg.prefill_train_steps,
        )


@dataclasses.dataclass(frozen=True)
class Setup:
    """The static pieces of a run: env, sizes, networks and settings (never in a pytree).

    Hashable: it is the static argument of the jitted epoch, so two runs with equal setups (a
    resumed run with a larger budget, say) share one compiled program through JAX's cache.
    """

    settings: EpochSettings
    learner: LearnerConfig
    env: Any
    dims: learner_lib.Dims
    nets: learner_lib.Networks
    mesh: Any = None  # jax.sharding.Mesh over all devices; None on one device

    @property
    def spec(self):
        return self.env.spec

    def shardings(self, state: Any) -> Any:
        """Per-leaf shardings of an `OnlineState` (None on one device)."""
        return None if self.mesh is None else parallel.shardings_by_path(self.mesh, state, _split)


def _split(path: str) -> int | None:
    """Which axis of an OnlineState leaf is split over devices: envs and replay columns."""
    if path.startswith(".env"):
        return 0
    if path.startswith((".replay.data", ".replay.episode_id")):
        return 1
    return 0 if path.startswith(".replay.next_episode_id") else None


@functools.lru_cache(maxsize=8)
def make_env(name: str, backend: str):
    """One env object per (name, backend) in a process, so jitted evaluation compiles once."""
    from crlkit.envs import make

    return make(name, backend=backend)


def make_setup(online: OnlineConfig, learner: LearnerConfig) -> Setup:
    """Build the env and networks for a run (ValueError on an unusable combination)."""
    if learner.actor_loss != "sac":
        raise ValueError(
            f"actor_loss {learner.actor_loss!r} needs dataset actions; online training uses 'sac'"
        )
    mesh = parallel.data_mesh()
    parallel.check_divisible("--num-envs", online.num_envs, parallel.mesh_size(mesh))
    parallel.check_divisible("--batch-size", online.batch_size, parallel.mesh_size(mesh))
    env = make_env(online.env, online.backend)
    spec = env.spec
    dims = learner_lib.Dims(spec.state_dim, spec.goal_dim, spec.action_dim)
    nets = learner_lib.make_networks(learner, dims)
    return Setup(EpochSettings.of(online), learner, env, dims, nets, mesh)


def _replay_example(dims: learner_lib.Dims) -> dict[str, jax.ShapeDtypeStruct]:
    return {
        "state": jax.ShapeDtypeStruct((dims.state_dim,), jnp.float32),
        "action": jax.ShapeDtypeStruct((dims.action_dim,), jnp.float32),
    }


def init_state(setup: Setup, key: jax.Array, num_updates: int | None = None) -> OnlineState:
    """A fresh run: new parameters, freshly reset envs, an empty buffer (jit it); `num_updates`:
    the SGD updates the run plans (the learning-rate schedule's horizon, see learner.init)."""
    cfg = setup.settings
    k_learner, k_env, k_loop = jax.random.split(key, 3)
    reset = jax.vmap(setup.env.reset)
    if setup.mesh is not None:  # each device resets (and calls MuJoCo for) its own envs
        split = jax.sharding.PartitionSpec(parallel.DATA)
        reset = jax.shard_map(reset, mesh=setup.mesh, in_specs=split, out_specs=split)
    state = OnlineState(
        learner=learner_lib.init(setup.nets, setup.learner, setup.dims, k_learner, num_updates),
        env=reset(jax.random.split(k_env, cfg.num_envs)),
        replay=empty_replay(setup),
        key=k_loop,
        train_steps=jnp.zeros((), jnp.int32),
        nonfinite_step=jnp.full((), -1, jnp.int32),
    )
    return parallel.constrain(state, setup.shardings(state))


def empty_replay(setup: Setup) -> replay_lib.ReplayState:
    cfg = setup.settings
    capacity = cfg.replay_steps_per_env * cfg.num_envs
    return replay_lib.init(_replay_example(setup.dims), cfg.num_envs, capacity)


# ---------------------------------------------------------------------------------------------
# The jitted epoch


def epoch(setup: Setup, state: OnlineState, num_steps: jax.Array) -> tuple[OnlineState, EpochStats]:
    """Run `num_steps` (traced) training steps, stopping early after a non-finite update."""
    stats = _zero_stats(setup, state)

    def running(carry):
        i, st, _ = carry
        return (i < num_steps) & (st.nonfinite_step < 0)

    def body(carry):
        i, st, acc = carry
        st, step_stats = training_step(setup, st)
        return i + 1, parallel.constrain(st, shardings), jax.tree.map(jnp.add, acc, step_stats)

    shardings = setup.shardings(state)
    state = parallel.constrain(state, shardings)
    _, state, stats = jax.lax.while_loop(running, body, (jnp.int32(0), state, stats))
    if setup.mesh is not None:  # host-readable on every process
        stats = parallel.constrain(stats, parallel.replicated(setup.mesh))
    return state, stats


def training_step(setup: Setup, state: OnlineState) -> tuple[OnlineState, EpochStats]:
    """Unroll the envs, insert into the buffer, then `updates_per_step` SGD updates."""
    key, k_unroll, k_updates = jax.random.split(state.key, 3)
    env_state, chunk, done, at_goal = _unroll(setup, state, k_unroll)
    replay = replay_lib.insert(state.replay, chunk, done)
    learner, nonfinite_step, sums, updates = jax.lax.cond(
        state.train_steps >= setup.settings.prefill_train_steps,
        lambda: _updates(setup, state.learner, replay, k_updates),
        lambda: _no_updates(setup, state.learner, replay, k_updates),
    )
    stats = EpochStats(
        learner=sums,
        updates=updates,
        at_goal=jnp.sum(at_goal),
        episodes=jnp.sum(done),
    )
    new_state = state.replace(
        learner=learner,
        env=env_state,
        replay=replay,
        key=key,
        train_steps=state.train_steps + 1,
        nonfinite_step=nonfinite_step,
    )
    return new_state, stats


def _unroll(setup: Setup, state: OnlineState, key: jax.Array):
    """`unroll_length` env steps of every env with the stochastic actor.

    Returns (env state, chunk {"state", "action"} [L, E, ...], done [L, E], at_goal [L, E]); the
    stored state is the one the action was taken in, `done` marks the last step of an episode.
    """
    nets, state_dim = setup.nets, setup.dims.state_dim

    def unroll(env_state: EnvState, actor_params, key: jax.Array):
        def env_step(env_state: EnvState, k: jax.Array):
            obs_state = env_state.obs[:, :state_dim]
            action = learner_lib.act(nets, actor_params, obs_state, env_state.goal, k, False)
            nxt = setup.env.step_batch(env_state, action)
            return nxt, ({"state": obs_state, "action": action}, nxt.done > 0, nxt.success)

        if setup.mesh is not None:  # a different noise stream on each device's envs
            key = jax.random.fold_in(key, jax.lax.axis_index(parallel.DATA))
        keys = jax.random.split(key, setup.settings.unroll_length)
        return jax.lax.scan(env_step, env_state, keys)

    if setup.mesh is not None:  # each device steps its own envs (MuJoCo callbacks stay local)
        envs, time_envs, whole = (P(parallel.DATA), P(None, parallel.DATA), P())
        unroll = jax.shard_map(
            unroll,
            mesh=setup.mesh,
            in_specs=(envs, whole, whole),
            out_specs=(envs, time_envs),
            check_vma=False,
        )
    env_state, (chunk, done, at_goal) = unroll(state.env, state.learner.actor.params, key)
    return env_state, chunk, done, at_goal


def _updates(setup: Setup, learner, replay, key):
    """`updates_per_step` SGD updates on fresh minibatches; non-finite updates are discarded.

    Returns (learner state, first non-finite SGD step or -1, metric sums, accepted updates).
    """
    cfg, goal_idx = setup.settings, jnp.asarray(setup.spec.goal_indices)

    def sgd(carry, k):
        ls, bad_step = carry
        sample = replay_lib.sample(replay, k, cfg.batch_size, cfg.gamma)
        goal = sample.future["state"][:, goal_idx]
        batch = learner_lib.Batch(
            state=sample.transition["state"],
            action=sample.transition["action"],
            goal=goal,
            actor_goal=goal,
        )
        if setup.mesh is not None:  # the global minibatch, split over devices
            batch = parallel.constrain(batch, parallel.split_on(setup.mesh, 0))
        ls, bad_step, metrics, ok = learner_lib.update_if_finite(
            setup.nets, setup.learner, ls, batch, bad_step
        )
        return (ls, bad_step), (metrics, ok)

    keys = jax.random.split(key, cfg.updates_per_step)
    bad0 = jnp.full((), -1, jnp.int32)
    (learner, bad_step), (metrics, ok) = jax.lax.scan(sgd, (learner, bad0), keys)
    sums = {k: jnp.sum(v).astype(jnp.float32) for k, v in metrics.items()}
    return learner, bad_step, sums, jnp.sum(ok).astype(jnp.int32)


def _no_updates(setup: Setup, learner, replay, key):
    """What `_updates` returns when the step only collects data (replay prefill)."""
    shapes = jax.eval_shape(lambda: _updates(setup, learner, replay, key)[2])
    sums = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    return learner, jnp.full((), -1, jnp.int32), sums, jnp.zeros((), jnp.int32)


def _zero_stats(setup: Setup, state: OnlineState) -> EpochStats:
    shapes = jax.eval_shape(lambda s: training_step(setup, s)[1], state)
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


# The one jitted epoch: `setup` is static (hashable), the state is donated.
jitted_epoch = jax.jit(epoch, static_argnums=0, donate_argnums=1)
