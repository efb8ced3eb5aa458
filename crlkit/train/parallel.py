"""Data parallelism over every device of every process: one mesh, one `data` axis.

```
mesh          jax.sharding.Mesh(all devices, ("data",))           (None on one device: today's code)
replicated    learner params, optimizer states, RNG keys, counters, the offline dataset
sharded       envs [E] (axis 0), replay [T, E] (axis 1), minibatches [B] (axis 0)
```

The jitted epoch/chunk stays one program over global arrays (GSPMD): the learner update sees the
global minibatch, so InfoNCE's negatives are the whole global batch (XLA gathers psi across
devices) and the gradient is its mean over the global batch (XLA all-reduces it). A global batch
of B therefore means the same on any number of devices. Env stepping runs under `shard_map` so
each device steps (and calls MuJoCo for) its own envs. Multi-host: `initialize` joins the
processes (jax.distributed) before anything touches a device.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from crlkit.checks import check_fields
from crlkit.config import option_field

DATA = "data"


def data_mesh() -> Mesh | None:
    """A mesh with one `data` axis over all devices of all processes; None on a single device."""
    devices = jax.devices()
    return Mesh(np.array(devices), (DATA,)) if len(devices) > 1 else None


def mesh_size(mesh: Mesh | None) -> int:
    """Devices along the data axis (1 without a mesh)."""
    return 1 if mesh is None else int(mesh.shape[DATA])


def check_divisible(flag: str, value: int, devices: int) -> None:
    """One-line ValueError unless `value` splits evenly over `devices` (naming sizes that do)."""
    if value % devices:
        lo, hi = max(devices, value // devices * devices), (value // devices + 1) * devices
        raise ValueError(
            f"{flag} {value} does not split over {devices} devices; use a multiple of {devices} "
            f"(e.g. {lo} or {hi})"
        )


def replicated(mesh: Mesh) -> NamedSharding:
    """Every device holds the whole array."""
    return NamedSharding(mesh, P())


def split_on(mesh: Mesh, axis: int) -> NamedSharding:
    """Axis `axis` split over the data axis, the rest whole."""
    return NamedSharding(mesh, P(*([None] * axis), DATA))


def shardings_by_path(mesh: Mesh, tree: Any, rule: Callable[[str], int | None]) -> Any:
    """A sharding per leaf: `rule(keystr path)` names the split axis (None: replicated)."""

    def one(path, leaf):
        axis = rule(jax.tree_util.keystr(path))
        # Empty leaves stay replicated: multi-process restores hand them back so
        empty = any(d == 0 for d in getattr(leaf, "shape", ()))
        return replicated(mesh) if axis is None or empty else split_on(mesh, axis)

    return jax.tree_util.tree_map_with_path(one, tree)


def constrain(tree: Any, shardings: Any | None) -> Any:
    """`with_sharding_constraint` where there is a mesh; the identity on one device."""
    return tree if shardings is None else jax.lax.with_sharding_constraint(tree, shardings)


def put_global(tree: Any, shardings: Any) -> Any:
    """Host (NumPy or local jax) leaves, equal on every process, as global arrays."""

    def one(x, sharding):
        x = np.asarray(x) if not jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x
        return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])

    return jax.tree.map(one, tree, shardings)


def put_local_slices(tree: Any, mesh: Mesh, axis: int) -> Any:
    """Global arrays from this process's slice (along `axis`) of host arrays equal everywhere."""
    count, index = jax.process_count(), jax.process_index()

    def one(x):
        x = np.asarray(x)
        size = x.shape[axis] // count
        local = np.take(x, np.arange(index * size, (index + 1) * size), axis=axis)
        return jax.make_array_from_process_local_data(split_on(mesh, axis), local, x.shape)

    return jax.tree.map(one, tree)


def reshard(tree: Any, shardings: Any) -> Any:
    """`tree` on `shardings`; empty leaves are made anew (device_put keeps their old sharding,
    which a compiled program then refuses)."""

    def one(x, sharding):
        if x.size:
            return jax.device_put(x, sharding)
        return jax.jit(lambda: jax.numpy.zeros(x.shape, x.dtype), out_shardings=sharding)()

    return jax.tree.map(one, tree, shardings)


def local_copy(tree: Any) -> Any:
    """NumPy copies of (replicated) global arrays, usable by single-device code on any process."""
    return jax.tree.map(lambda x: np.asarray(x.addressable_shards[0].data), tree)


def is_primary() -> bool:
    """True in the process that writes logs, summaries and evaluations (process 0)."""
    return jax.process_index() == 0


def topology() -> dict[str, int]:
    """{'devices': ..., 'processes': ...} for summary.json."""
    return {"devices": jax.device_count(), "processes": jax.process_count()}


# ---------------------------------------------------------------------------------------------
# Multi-host


@dataclasses.dataclass(frozen=True)
class DistributedConfig:
    """How this process joins a multi-host run (jax.distributed). All auto: the JAX_* process
    variables if set, else one process, or JAX's own detection on Slurm / Open MPI."""

    coordinator: str | None = option_field(
        None,
        "host:port of process 0's coordinator (multi-host runs).",
        auto="JAX_COORDINATOR_ADDRESS if set",
    )
    num_processes: int | None = option_field(
        None,
        "Processes in the run.",
        auto="JAX_NUM_PROCESSES if set, else 1 (or Slurm / Open MPI's, detected by JAX)",
        minimum=1,
    )
    process_id: int | None = option_field(
        None,
        "This process's index in [0, num_processes).",
        auto="JAX_PROCESS_ID if set",
        minimum=0,
    )
    init_timeout: int = option_field(
        300, "Seconds to wait for every process to reach the coordinator.", minimum=1
    )

    def __post_init__(self) -> None:
        check_fields(self)
        if self.num_processes is None or self.num_processes == 1:
            return
        if self.process_id is None or not self.process_id < self.num_processes:
            raise ValueError(
                f"--process-id {self.process_id if self.process_id is not None else '(not given)'}"
                f" is outside [0, {self.num_processes}) for --num-processes {self.num_processes}"
            )
        if not self.coordinator:
            raise ValueError("--num-processes > 1 needs --coordinator host:port (process 0's)")

    @property
    def explicit(self) -> bool:
        """Whether the processes are named (else one process, or JAX's own detection)."""
        return self.num_processes is not None and self.num_processes > 1


def from_environment(cfg: DistributedConfig, environ: Mapping[str, str]) -> DistributedConfig:
    """Fill auto fields from JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID.

    Raises ValueError (one line naming the variable) for a value that is not a number or an
    address, and for process variables that do not fit together.
    """
    coordinator = cfg.coordinator or environ.get("JAX_COORDINATOR_ADDRESS", "").strip() or None
    if coordinator and not cfg.coordinator and not _is_host_port(coordinator):
        raise ValueError(
            f"JAX_COORDINATOR_ADDRESS={coordinator!r} is not host:port (e.g. node0:1234)"
        )
    num = cfg.num_processes
    if num is None:  # JAX_NUM_PROCESSES=0 reads as unset (one process)
        num = _env_int(environ, "JAX_NUM_PROCESSES") or None
    pid = cfg.process_id if cfg.process_id is not None else _env_int(environ, "JAX_PROCESS_ID")
    try:
        return DistributedConfig(coordinator, num, pid, cfg.init_timeout)
    except ValueError as err:  # name the variables the values came from
        names = [n for n in _PROCESS_ENV if environ.get(n, "").strip()]
        raise ValueError(f"{err} (from {', '.join(names)})" if names else str(err)) from None


_PROCESS_ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


def _env_int(environ: Mapping[str, str], name: str) -> int | None:
    """The integer >= 0 in environment variable `name` (None when unset or empty)."""
    raw = environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(f"{name}={raw!r} is not an integer >= 0")
    return value


def _is_host_port(address: str) -> bool:
    host, _, port = address.rpartition(":")
    return bool(host) and port.isdigit() and 0 < int(port) < 65536


_AUTO_ENV = ("SLURM_JOB_ID", "OMPI_COMM_WORLD_SIZE")

# A process that sends no heartbeat for this long counts as dead: the coordinator tells the
# others, which print one line and exit PEER_LOST (see `exit_peer_lost`). JAX's default is
# 100 s. Heartbeats come from a thread of their own, so a long compile or evaluation does not
# miss them.
HEARTBEAT_TIMEOUT_S = 30


def initialize(cfg: DistributedConfig, environ: dict[str, str] | None = None) -> bool:
    """Join the multi-host run `cfg` describes (before any device use); False for one process.

    Raises ValueError (one line) for bad flags or process variables and for a coordinator not
    reached in time. Once joined, a process that dies or stops answering makes every survivor
    print one line naming it and exit PEER_LOST (69) within HEARTBEAT_TIMEOUT_S (see below).
    """
    import os

    environ = dict(os.environ if environ is None else environ)
    cfg = from_environment(cfg, environ)
    if not cfg.explicit and not any(k in environ for k in _AUTO_ENV):
        return False
    kwargs: dict[str, Any] = {
        "initialization_timeout": cfg.init_timeout,
        "heartbeat_timeout_seconds": HEARTBEAT_TIMEOUT_S,
    }
    if cfg.explicit:  # else JAX detects Slurm / Open MPI itself
        kwargs.update(
            coordinator_address=cfg.coordinator,
            num_processes=cfg.num_processes,
            process_id=cfg.process_id,
        )
    if cfg.explicit and cfg.process_id > 0:
        # XLA aborts the process (no Python error) when the coordinator never answers: probe it
        _wait_for_coordinator(cfg.coordinator, cfg.init_timeout)
    _silence_xla_log(environ)
    try:
        jax.distributed.initialize(**kwargs)
    except Exception as err:  # XLA raises its own runtime errors; keep the message to one line
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"could not join the multi-host run at {cfg.coordinator or '(auto-detected)'} within "
            f"{cfg.init_timeout} s ({first[:160]}); check --coordinator and that all "
            f"{cfg.num_processes or ''} processes were started"
        ) from None
    _PEERS.coordinator = cfg.coordinator or "(auto-detected)"
    _exit_peer_lost_on_abort()
    return True


XLA_LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL"
JAX_DEFAULT_LOG_LEVEL = "1"  # jax/__init__.py: os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")


def _silence_xla_log(environ: Mapping[str, str]) -> None:
    """Keep XLA's C++ log (absl) quiet in a multi-process run, unless the user set its level.

    When a peer dies or hangs, XLA's coordination client logs a fatal error with a C++ stack and
    aborts; crlkit turns the abort into one line and exit PEER_LOST (below), and this keeps XLA's
    lines from coming before it. TF_CPP_MIN_LOG_LEVEL (read only when jaxlib loads) set by the
    user wins: 0 shows XLA's log again. (`import jax` sets it to 1 when unset, so 1 counts as
    unset.)
    """
    if environ.get(XLA_LOG_LEVEL, JAX_DEFAULT_LOG_LEVEL) != JAX_DEFAULT_LOG_LEVEL:
        return
    try:
        from jax._src.lib import utils  # what jax's own `jax_logging_level` setting calls

        utils.absl_set_min_log_level(4)  # above FATAL (3): nothing
    except (ImportError, AttributeError):  # another jaxlib: its log stays as it is
        pass


def _wait_for_coordinator(address: str, timeout: float) -> None:
    """Return once `host:port` accepts a TCP connection; one-line ValueError after `timeout` s."""
    import socket
    import time

    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--coordinator {address!r} is not host:port (e.g. node0:1234)")
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=1.0):
                return
        except OSError as err:
            if time.monotonic() >= deadline:
                raise ValueError(
                    f"could not join the multi-host run at {address} within {timeout:g} s "
                    f"(coordinator unreachable: {err.strerror or err}); start process 0 there or "
                    f"fix --coordinator"
                ) from None
            time.sleep(0.5)


# ---------------------------------------------------------------------------------------------
# A dead peer: one line and exit PEER_LOST instead of an XLA abort
#
# Left alone, JAX reacts to a dead process in two ways, both noisy: a collective in flight
# raises a Gloo/NCCL error whose traceback is followed at exit by JAX's shutdown barrier, which
# waits for the dead process and then aborts; and the coordination client, once it polls the
# error (at once when process 0, which hosts the coordinator, dies; after the heartbeat timeout
# for another process), LOG(FATAL)s: SIGABRT and a C++ stack. The client's handler cannot be
# replaced from Python (jaxlib 0.10 takes a `missed_heartbeat_callback` but cannot hand it the
# error: std::bad_cast), so crlkit (1) routes a failed collective to `exit_peer_lost` (the CLI
# does, for any error of a multi-process run that names a collective or the coordinator) and
# (2) turns the client's SIGABRT into the same line and exit code: a C-level SIGABRT handler
# (ctypes) that prints the line and leaves with `os._exit`. Both skip the shutdown barrier.
# XLA's own log lines (E... or F... coordination_service*.cc) are silenced in multi-process runs
# (`_silence_xla_log`), unless the user set TF_CPP_MIN_LOG_LEVEL.
# Checkpoints stay safe: orbax renames a checkpoint into place only once every process has
# written it; a torn one stays a `*.orbax-checkpoint-tmp-*` folder, removed on resume.


class _Peers:
    """What the peer-loss handlers need to know about this run, set by `initialize`."""

    coordinator = ""
    leaving = threading.Lock()  # held by the one thread that prints the line and exits
    abort_handler: Any = None  # the ctypes SIGABRT handler, kept alive


_PEERS = _Peers()
_SECOND_HANDLER_WAIT_S = 10.0  # how long a second caller of `exit_peer_lost` waits for the first
_TASK_RE = re.compile(r"task[:_ ]?(\d+)")
_PEER_SIGNS = (
    "gloo",
    "nccl",
    "connection reset",
    "connection refused",
    "heartbeat",
    "barrier",
    "unavailable:",
    "deadline_exceeded",
    "coordination service",
)


def peer_failure(err: BaseException) -> bool:
    """True when `err`, in a multi-process run, says a peer died or stopped answering (a
    collective or coordinator error), to be handled by `exit_peer_lost`."""
    if not _PEERS.coordinator or jax.process_count() <= 1:
        return False
    text = str(err).lower()
    return any(sign in text for sign in _PEER_SIGNS)


def exit_peer_lost(detail: str = "") -> None:
    """Print one line naming the missing process and leave at once with exit code PEER_LOST
    (os._exit: JAX's shutdown barrier at exit would wait for the dead process, then abort)."""
    import os
    import sys
    import time

    from crlkit.exit_codes import PEER_LOST

    if not _PEERS.leaving.acquire(blocking=False):
        # Another thread got here first and is printing the line. Returning would let an abort in
        # progress on this thread dump core before that line is out (the coordinator's death
        # fails a collective and aborts the coordination client at the same instant): wait for
        # the other thread's exit instead, and exit here should it never come.
        time.sleep(_SECOND_HANDLER_WAIT_S)
        os._exit(PEER_LOST)
    me, count = jax.process_index(), jax.process_count()
    found = sorted({int(n) for n in _TASK_RE.findall(detail.lower())} - {me})
    if found:
        who = "process " + ", ".join(map(str, found))
    elif count == 2:
        who = f"process {1 - me}"
    else:
        who = "process 0 (the coordinator)" if me else "another process"
    first = detail.strip().splitlines()[0][:160] if detail.strip() else ""
    line = (
        f"Error: lost {who} of the {count}-process run (coordinator {_PEERS.coordinator}); "
        f"this is process {me}, stopping; resume all processes with --resume"
        + (f" [{first}]" if first else "")
    )
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    with contextlib.suppress(Exception):
        os.write(2, (line + "\n").encode())
    os._exit(PEER_LOST)


def _exit_peer_lost_on_abort() -> None:
    """Make a SIGABRT of this process (XLA's coordination client giving up on a peer) print
    `exit_peer_lost`'s line and exit PEER_LOST instead of dumping core."""
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return
    handler = ctypes.CFUNCTYPE(None, ctypes.c_int)(lambda _signum: exit_peer_lost())
    libc.signal.restype = ctypes.c_void_p
    libc.signal.argtypes = (ctypes.c_int, ctypes.c_void_p)
    libc.signal(signal.SIGABRT, ctypes.cast(handler, ctypes.c_void_p))
    _PEERS.abort_handler = handler
