"""`native` backend: MuJoCo C on CPU threads, reached from jitted code through one host callback.

The JAX side stays pure: every quantity that determines the next state (time, qpos, qvel, act,
qacc_warmstart) rides in the `PhysicsState` pytree, and the host writes all of it into an `MjData`
before stepping, so the `MjData` objects are scratch space and the result depends only on the
callback's arguments. Under `jax.vmap` the callback is batched (`vmap_method='broadcast_all'`):
one call receives every env of the batch, packs them into one float64 matrix with a few NumPy
operations, and the calling thread and the pool's workers take small blocks of rows from a shared
counter until none are left. MuJoCo releases the GIL inside its functions, so the threads step in
parallel; the Python work per env is a handful of binding calls (~4 us
against the ~150-300 us of physics in one env step of the maze bodies).
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from crlkit.envs.backends.base import PhysicsState

_S = mujoco.mjtState
# Packed row layout follows mjtState bit order: [time, qpos, qvel, act, qacc_warmstart, (ctrl)].
_SPEC_OUT = int(
    _S.mjSTATE_TIME | _S.mjSTATE_QPOS | _S.mjSTATE_QVEL | _S.mjSTATE_ACT | _S.mjSTATE_WARMSTART
)
_SPEC_IN = _SPEC_OUT | int(_S.mjSTATE_CTRL)
# Rows are handed out in blocks this small so the threads finish within ~one env step of each
# other (envs in contact cost more than their neighbours); handing out a block costs ~1 us.
_ROWS_PER_BLOCK = 2
_T = mujoco.mjtSensor
# Position/velocity-stage sensors that need only kinematics, com and cvel (no collision, tendon
# velocity or actuator state), so the cheap refresh below computes them exactly.
_KINEMATIC_SENSORS = frozenset(
    int(t)
    for t in (
        _T.mjSENS_JOINTPOS,
        _T.mjSENS_JOINTVEL,
        _T.mjSENS_BALLQUAT,
        _T.mjSENS_BALLANGVEL,
        _T.mjSENS_FRAMEPOS,
        _T.mjSENS_FRAMEQUAT,
        _T.mjSENS_FRAMEXAXIS,
        _T.mjSENS_FRAMEYAXIS,
        _T.mjSENS_FRAMEZAXIS,
        _T.mjSENS_FRAMELINVEL,
        _T.mjSENS_FRAMEANGVEL,
        _T.mjSENS_SUBTREECOM,
        _T.mjSENS_SUBTREELINVEL,
        _T.mjSENS_SUBTREEANGMOM,
        _T.mjSENS_VELOCIMETER,
        _T.mjSENS_GYRO,
        _T.mjSENS_MAGNETOMETER,
    )
)


def default_num_threads() -> int:
    """Cores this process may run on (the affinity mask, not the machine's core count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def refresh_fn(m: mujoco.MjModel) -> Callable[[mujoco.MjModel, mujoco.MjData], None]:
    """The cheapest MuJoCo call chain that makes xpos and pos/vel sensors match (qpos, qvel)."""
    if m.nsensordata == 0:
        return mujoco.mj_kinematics
    live = m.sensor_type[m.sensor_needstage <= int(mujoco.mjtStage.mjSTAGE_VEL)]
    if all(int(t) in _KINEMATIC_SENSORS for t in live):
        return _refresh_kinematic
    return _refresh_full


def _refresh_kinematic(m: mujoco.MjModel, d: mujoco.MjData) -> None:
    mujoco.mj_kinematics(m, d)
    mujoco.mj_comPos(m, d)
    mujoco.mj_sensorPos(m, d)
    mujoco.mj_comVel(m, d)
    # Explicit: mj_sensorVel skips this when a stale flag from the last mj_step says it is done.
    mujoco.mj_subtreeVel(m, d)
    mujoco.mj_sensorVel(m, d)


def _refresh_full(m: mujoco.MjModel, d: mujoco.MjData) -> None:
    # The position/velocity half of mj_forward (what ogbench's mj_step1 computes).
    mujoco.mj_fwdPosition(m, d)
    mujoco.mj_sensorPos(m, d)
    mujoco.mj_fwdVelocity(m, d)
    mujoco.mj_subtreeVel(m, d)
    mujoco.mj_sensorVel(m, d)


class NativeBackend:
    """MuJoCo C behind `jax.pure_callback`; see the module docstring.

    Args:
      mj_model: the compiled model (kept by reference; not modified).
      n_substeps: physics steps per `step` call, with ctrl held.
      num_threads: worker threads; default: the cores this process may use.
    """

    name = "native"

    def __init__(self, mj_model: mujoco.MjModel, n_substeps: int, num_threads: int | None = None):
        if n_substeps < 1:
            raise ValueError(f"n_substeps must be >= 1, got {n_substeps}")
        self.mj_model = mj_model
        self.n_substeps = int(n_substeps)
        self.num_threads = int(num_threads or default_num_threads())
        m = mj_model
        self._sizes = (m.nq, m.nv, m.na, m.nv, m.nu)  # qpos, qvel, act, warmstart, ctrl
        self._n_in = mujoco.mj_stateSize(m, _SPEC_IN)
        if self._n_in != 1 + sum(self._sizes):
            # Actuator/sensor delay history would sit inside the packed rows; not supported.
            raise ValueError(
                "native backend: models with history (delays) are not supported; use --backend mjx"
            )
        self._n_out = mujoco.mj_stateSize(m, _SPEC_OUT)
        self._refresh = refresh_fn(m)
        self._datas = [mujoco.MjData(m) for _ in range(self.num_threads)]
        # The calling thread is one of the num_threads workers (it would only sleep otherwise).
        self._pool = ThreadPoolExecutor(self.num_threads - 1) if self.num_threads > 1 else None
        # XLA may run two callbacks at once (e.g. two jitted programs); the MjData are shared.
        self._lock = threading.Lock()

    # ---- JAX side -------------------------------------------------------------------------

    def _out_types(self, dtype) -> tuple[jax.ShapeDtypeStruct, ...]:
        m = self.mj_model
        shapes = ((m.nq,), (m.nv,), (m.na,), (), (m.nv,), (m.nbody, 3), (m.nsensordata,))
        return tuple(jax.ShapeDtypeStruct(s, dtype) for s in shapes)

    def init(
        self, qpos: jax.Array, qvel: jax.Array, needed: jax.Array | None = None
    ) -> PhysicsState:
        """State for one env at (qpos, qvel), time 0, zero warm start, kinematics done.

        With `needed` False the host skips this env (its xpos and sensordata come back zero): the
        auto-reset of a batch then costs MuJoCo work only for the envs that are done.
        """
        qpos = jnp.asarray(qpos, jnp.float32)
        qvel = jnp.asarray(qvel, jnp.float32)
        m = self.mj_model
        zeros = jnp.zeros((m.na,), qpos.dtype), jnp.zeros((), qpos.dtype)
        needed = jnp.ones((), qpos.dtype) if needed is None else jnp.asarray(needed, qpos.dtype)
        warm = jnp.zeros((m.nv,), qpos.dtype)
        return self._call(self._host_init, qpos, qvel, *zeros, warm, needed)

    def step(self, state: PhysicsState, ctrl: jax.Array) -> PhysicsState:
        """Advance `n_substeps` physics steps with `ctrl` held; returns the new state."""
        s = state
        ctrl = jnp.asarray(ctrl, s.qpos.dtype)
        return self._call(self._host_step, s.qpos, s.qvel, s.act, s.time, s.qacc_warmstart, ctrl)

    def _call(self, host_fn, *args: jax.Array) -> PhysicsState:
        """One (batched under vmap) host call returning every PhysicsState field."""
        out = jax.pure_callback(
            host_fn, self._out_types(args[0].dtype), *args, vmap_method="broadcast_all"
        )
        qpos, qvel, act, time, warm, xpos, sensordata = out
        return PhysicsState(
            qpos=qpos,
            qvel=qvel,
            act=act,
            time=time,
            qacc_warmstart=warm,
            xpos=xpos,
            sensordata=sensordata,
        )

    # ---- host side ------------------------------------------------------------------------

    def _host_step(self, qpos, qvel, act, time, warm, ctrl):
        """Steps a batch (any leading shape) of envs; returns every state field, same shapes."""
        return self._host_run(self._step_rows, qpos, qvel, act, time, warm, ctrl)

    def _host_init(self, qpos, qvel, act, time, warm, needed):
        """Kinematics and sensors for the needed rows of a batch of (qpos, qvel); the state is
        otherwise unchanged (rows not needed: state as given, zero xpos and sensordata)."""
        ctrl = np.zeros((*np.shape(time), self.mj_model.nu), np.float64)
        rows = np.flatnonzero(np.reshape(needed, -1))
        return self._host_run(self._refresh_rows, qpos, qvel, act, time, warm, ctrl, rows)

    def _host_run(self, rows_fn, qpos, qvel, act, time, warm, ctrl, rows=None):
        """Packs a batch into one float64 matrix, runs rows_fn over it on the threads, unpacks.

        `rows`: indices of the rows to run (all when None); the others pass their state through
        with zero xpos and sensordata.
        """
        batch, dtype = np.shape(time), np.asarray(qpos).dtype
        n = int(np.prod(batch, dtype=np.int64))
        packed = np.empty((n, self._n_in), np.float64)
        packed[:, 0] = np.reshape(time, (n,))
        col = 1
        for size, arr in zip(self._sizes, (qpos, qvel, act, warm, ctrl), strict=True):
            packed[:, col : col + size] = np.reshape(arr, (n, size))
            col += size
        m = self.mj_model
        todo = packed if rows is None else packed[rows]
        k = len(todo)
        sub = (np.empty((k, self._n_out)), np.empty((k, m.nbody, 3)), np.empty((k, m.nsensordata)))
        with self._lock:
            self._run_rows(rows_fn, k, todo, *sub)
        if rows is None:
            out, xpos, sensordata = sub
        else:
            out = packed[:, : self._n_out].copy()
            xpos = np.zeros((n, m.nbody, 3))
            sensordata = np.zeros((n, m.nsensordata))
            out[rows], xpos[rows], sensordata[rows] = sub
        qpos, qvel, act, warm = np.split(out[:, 1:], np.cumsum([m.nq, m.nv, m.na]), axis=1)
        fields = (qpos, qvel, act, out[:, 0], warm, xpos, sensordata)
        return tuple(np.asarray(a, dtype).reshape(batch + a.shape[1:]) for a in fields)

    def _step_rows(self, d: mujoco.MjData, lo: int, hi: int, packed, out, xpos, sensors) -> None:
        """Rows [lo, hi) on one MjData: set the full state, step, refresh, read back."""
        m, n_sub, refresh = self.mj_model, self.n_substeps, self._refresh
        for i in range(lo, hi):
            mujoco.mj_setState(m, d, packed[i], _SPEC_IN)
            mujoco.mj_step(m, d, n_sub)
            # mj_step leaves xpos/sensors at the pre-integration state; make them match qpos.
            refresh(m, d)
            mujoco.mj_getState(m, d, out[i], _SPEC_OUT)
            xpos[i] = d.xpos
            sensors[i] = d.sensordata

    def _refresh_rows(self, d: mujoco.MjData, lo: int, hi: int, packed, out, xpos, sensors):
        """Rows [lo, hi) on one MjData: set the state, refresh kinematics and sensors only."""
        m, refresh = self.mj_model, self._refresh
        for i in range(lo, hi):
            mujoco.mj_setState(m, d, packed[i], _SPEC_IN)
            refresh(m, d)
            out[i] = packed[i, : self._n_out]
            xpos[i] = d.xpos
            sensors[i] = d.sensordata

    def _run_rows(self, rows_fn, n: int, *arrays) -> None:
        """Runs rows_fn(data, lo, hi, *arrays) over rows [0, n) on the calling thread and the pool.

        Each thread owns one MjData and takes blocks of rows from a shared counter (`next` on an
        itertools.count is atomic under the GIL) until none are left, so a thread that drew
        cheap envs takes more of them. Which thread steps a row does not change its result: the
        full state is written before every step.
        """
        if self._pool is None or n <= _ROWS_PER_BLOCK:
            rows_fn(self._datas[0], 0, n, *arrays)
            return
        blocks = itertools.count()

        def work(d: mujoco.MjData) -> None:
            while (lo := next(blocks) * _ROWS_PER_BLOCK) < n:
                rows_fn(d, lo, min(lo + _ROWS_PER_BLOCK, n), *arrays)

        futures = [self._pool.submit(work, d) for d in self._datas[1:]]
        work(self._datas[0])
        for f in futures:
            f.result()
