"""The offline loop's compiled part: chunks of n x (minibatch -> learner.update).

Chunk lengths are traced loop bounds, so chunks that end at an evaluation, a checkpoint or the
last step never trigger a recompilation. A chunk stops at the first non-finite update and keeps
the last finite state.

On several devices (crlkit/train/parallel.py) the learner state and an on-device dataset are
replicated and each minibatch is split over the data axis: the update sees the global batch, so
losses equal a one-device run of the same batch. Host-sampled blocks are drawn alike on every
process (same seed and step), and each process hands over only its slice of the batch.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from crlkit import learner
from crlkit.config import LearnerConfig
from crlkit.train import parallel
from crlkit.train.offline.config import OfflineConfig
from crlkit.train.offline.sampling import DeviceData, sample_batch, sample_host_block

HOST_BLOCK = 64  # minibatches sampled on the host per device transfer


@flax.struct.dataclass
class Carry:
    """What a training chunk changes and a checkpoint stores: the learner state and sampling key."""

    learner: learner.CRLState
    key: jax.Array


def _zero_metrics(nets, lcfg: LearnerConfig, state: learner.CRLState, batch: learner.Batch):
    shapes = jax.eval_shape(lambda s, b: learner.update(nets, lcfg, s, b)[1], state, batch)
    return jax.tree.map(lambda s: jnp.zeros(s.shape, jnp.float32), shapes)


def _sgd_loop(nets, lcfg: LearnerConfig, carry: Carry, n: jax.Array, next_batch, example, mesh):
    """Up to n (batch -> update) steps, stopping after the first non-finite one.

    next_batch(i, carry) -> (batch, carry). Returns (carry, summed metrics, accepted updates,
    first non-finite SGD step or -1); a non-finite update is discarded (see update_if_finite).
    """

    def cond(acc):
        i, _, _, _, bad = acc
        return (i < n) & (bad < 0)

    def body(acc):
        i, carry, sums, count, bad = acc
        batch, carry = next_batch(i, carry)
        if mesh is not None:  # the global minibatch, split over devices
            batch = parallel.constrain(batch, parallel.split_on(mesh, 0))
        state, bad, metrics, ok = learner.update_if_finite(nets, lcfg, carry.learner, batch, bad)
        sums = jax.tree.map(jnp.add, sums, metrics)
        return i + 1, carry.replace(learner=state), sums, count + ok, bad

    zeros = _zero_metrics(nets, lcfg, carry.learner, example)
    init = (jnp.int32(0), carry, zeros, jnp.float32(0.0), jnp.int32(-1))
    _, carry, sums, count, bad = jax.lax.while_loop(cond, body, init)
    return carry, sums, count, bad


def make_device_chunk(
    nets: learner.Networks, lcfg: LearnerConfig, cfg: OfflineConfig, mesh: Any = None
) -> Callable[[Carry, DeviceData, jax.Array], tuple[Carry, dict, jax.Array, jax.Array]]:
    """jit(carry, data, n) -> (carry, summed metrics, accepted, bad): n x (sample -> update)."""

    def chunk(carry: Carry, data: DeviceData, n: jax.Array):
        def next_batch(_, carry):
            key, sample_key = jax.random.split(carry.key)
            return sample_batch(cfg, data, sample_key), carry.replace(key=key)

        example = jax.eval_shape(lambda d, k: sample_batch(cfg, d, k), data, carry.key)
        return _sgd_loop(nets, lcfg, carry, n, next_batch, example, mesh)

    return jax.jit(chunk, donate_argnums=(0,))


def make_host_chunk(
    nets: learner.Networks, lcfg: LearnerConfig, mesh: Any = None
) -> Callable[[Carry, learner.Batch, jax.Array], tuple[Carry, dict, jax.Array, jax.Array]]:
    """jit(carry, batches [H, B, ...], n <= H) -> (carry, summed metrics, accepted, bad): the
    first n batches."""

    def chunk(carry: Carry, batches: learner.Batch, n: jax.Array):
        def next_batch(i, carry):
            return jax.tree.map(lambda x: x[i], batches), carry

        example = jax.tree.map(lambda x: x[0], batches)
        return _sgd_loop(nets, lcfg, carry, n, next_batch, example, mesh)

    return jax.jit(chunk, donate_argnums=(0,))


class Trainer:
    """Runs chunks of SGD steps with the chosen sampler: compiled once, for any chunk length."""

    def __init__(
        self, nets, lcfg: LearnerConfig, cfg: OfflineConfig, data: DeviceData, sampler: str
    ):
        self.cfg = cfg
        self.sampler = sampler
        self.mesh = parallel.data_mesh()
        parallel.check_divisible("--batch-size", cfg.batch_size, parallel.mesh_size(self.mesh))
        if sampler == "device":
            self.data = self.place(data)
        else:
            self.data = data
        self._jitted = (
            make_device_chunk(nets, lcfg, cfg, self.mesh)
            if sampler == "device"
            else make_host_chunk(nets, lcfg, self.mesh)
        )
        self.compiled: Any = None

    def place(self, tree: Any) -> Any:
        """Host or default-device arrays replicated on every device (as they are on one)."""
        if self.mesh is None:
            return jax.device_put(tree)
        return parallel.put_global(tree, jax.tree.map(lambda _: self.replicated, tree))

    @property
    def replicated(self) -> Any:
        return None if self.mesh is None else parallel.replicated(self.mesh)

    def abstract(self, tree: Any) -> Any:
        """ShapeDtypeStructs of `tree` on the devices `place` puts it (a restore template)."""
        if self.mesh is None:
            return tree
        return jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=self.replicated), tree
        )

    def _put_block(self, block: learner.Batch) -> learner.Batch:
        if self.mesh is None:
            return jax.device_put(block)
        return parallel.put_local_slices(block, self.mesh, axis=1)

    def compile(self, carry: Carry) -> float:
        """Compile the chunk ahead of time (a traced chunk length: no later recompilation)."""
        t0 = time.perf_counter()
        if self.sampler == "device":
            source = self.data
        else:
            block = (HOST_BLOCK, self.cfg.batch_size)
            example = sample_host_block(self.cfg, self.data, np.random.default_rng(0), 1)
            where = None if self.mesh is None else parallel.split_on(self.mesh, 1)
            source = jax.tree.map(
                lambda x: jax.ShapeDtypeStruct(block + x.shape[2:], x.dtype, sharding=where),
                example,
            )
        self.compiled = self._jitted.lower(carry, source, jnp.int32(0)).compile()
        return time.perf_counter() - t0

    def run(self, carry: Carry, start_step: int, n: int) -> tuple[Carry, dict, int]:
        """Up to n SGD steps from `start_step`.

        Returns the new carry, {"sums": summed metrics of the kept updates, "count": how many}
        and the first non-finite SGD step (-1 when all were finite; training stops there,
        keeping the last finite state).
        """
        if self.compiled is None:
            self.compile(carry)
        if self.sampler == "device":
            carry, sums, count, bad = self.compiled(carry, self.data, jnp.int32(n))
            return carry, _stats(jax.device_get(sums), float(count)), int(bad)
        totals: dict[str, float] = {}
        done, kept, bad = 0, 0.0, -1
        while done < n and bad < 0:
            # Host blocks start at multiples of HOST_BLOCK and depend only on (seed, that step):
            # a resumed run, or chunks cut elsewhere, sample what the first run did.
            step = start_step + done
            offset = step % HOST_BLOCK
            rng = np.random.default_rng([self.cfg.seed, step - offset])
            block = sample_host_block(self.cfg, self.data, rng, HOST_BLOCK)
            if offset:  # this chunk starts inside the block: its next batch first
                block = jax.tree.map(functools.partial(np.roll, shift=-offset, axis=0), block)
            count = min(HOST_BLOCK - offset, n - done)
            carry, sums, ok, bad = self.compiled(carry, self._put_block(block), jnp.int32(count))
            bad = int(bad)
            for k, v in sums.items():
                totals[k] = totals.get(k, 0.0) + float(v)
            done, kept = done + count, kept + float(ok)
        return carry, _stats(totals, kept), bad


def _stats(sums: dict, count: float) -> dict:
    """What a chunk hands the host loop: additive, so chunks between two log events add up."""
    return {"sums": {k: np.float64(v) for k, v in sums.items()}, "count": np.float64(count)}


def means(stats: dict) -> dict[str, float]:
    """Mean metrics of the kept updates of `stats`."""
    return {k: float(v) / max(float(stats["count"]), 1.0) for k, v in stats["sums"].items()}
