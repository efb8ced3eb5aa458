"""`crlkit bench learner`: compile time, step time, FLOP rate and peak memory of the CRL update.

It times `learner.update_if_finite`, the step both training loops run, with the settings users
get by default (remat `auto`, resolved by `networks.resolve_remat`).

Each (depth, variant) runs in a fresh Python subprocess so its peak host RSS (`ru_maxrss`) belongs
to that depth alone; on a GPU the device's `peak_bytes_in_use` is reported instead. FLOPs are
counted analytically: the matmul FLOPs of the update's forward and backward passes (bias, LayerNorm
and activations are not counted; with remat the recomputed forward matmuls are counted, because they
run). The matmul peak is measured in the same run with large float32 matmuls.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from crlkit.config import REMAT_MODES, LearnerConfig, NetworkConfig
from crlkit.learner import Batch, Dims, init, make_networks, update_if_finite
from crlkit.networks import BLOCK_LAYERS, count_params, remat_groups, resolve_remat

# The paper's ant task sizes: its parameter counts are quoted at these dims.
BENCH_DIMS = Dims(state_dim=29, goal_dim=2, action_dim=8)
ROW_KEYS = ("depth", "params", "compile_s", "step_s", "gflops", "peak_fraction", "peak_mem_mb")


@dataclasses.dataclass(frozen=True)
class BenchLearnerConfig:
    """What `crlkit bench learner` measures."""

    depths: tuple[int, ...] = (4, 64, 256, 1024)  # actor and critic depth, each run separately
    width: int = 256  # units per layer
    batch: int = 512  # minibatch size of the SGD step
    repeats: int = 10  # timed steps per depth (the median is reported)
    remat: str = "auto"  # auto (networks.resolve_remat, the loops' default), on, off
    compare_unrolled: bool = False  # also time the Python-unrolled twin
    unrolled_max_depth: int = 256  # skip the unrolled twin above this depth (its compile explodes)
    timeout_s: float = 1800.0  # per-subprocess limit; a run past it is reported as timed out

    def __post_init__(self) -> None:
        if not self.depths:
            raise ValueError("depths is empty; give e.g. 4,64,256,1024")
        bad = [d for d in self.depths if d <= 0 or d % 4]
        if bad:
            raise ValueError(f"depths {bad} are not positive multiples of 4 (e.g. 4,64,256,1024)")
        NetworkConfig(width=self.width)
        if self.batch < 2:
            raise ValueError(f"batch must be >= 2 (contrastive negatives), got {self.batch}")
        if self.repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {self.repeats}")
        if self.remat not in REMAT_MODES:
            raise ValueError(f"unknown remat {self.remat!r}; valid: {', '.join(REMAT_MODES)}")

    def remat_for(self, depth: int, platform: str) -> bool:
        """Whether blocks are rematerialised at this depth on this platform (as in the loops)."""
        net = NetworkConfig(critic_depth=depth, actor_depth=depth, remat=self.remat)
        return resolve_remat(net, platform)


# ---- analytic FLOPs ---------------------------------------------------------------------------


def update_matmul_flops(cfg: LearnerConfig, dims: Dims, batch: int) -> dict[str, float]:
    """Matmul FLOPs of one `update` (sac actor loss): {'model': ..., 'executed': ...}.

    Residual towers only (the bench's network). Each of `num_critics` critics costs its own
    phi/psi passes.

    A layer x[B, i] @ W[i, o] costs 2*B*i*o forward; its backward costs the same again for dW
    and for dX (dX is skipped where the input is data). The actor loss runs the actor forward and
    backward, phi forward and backward to its inputs only (critic params are constants there) and
    psi forward only; the critic loss runs phi and psi forward and backward plus the B x B Gram
    matmul. `executed` adds the forward of every scanned block recomputed under remat (twice
    with two-level remat).
    """
    net, w, b = cfg.network, cfg.network.width, batch

    def layers(in_dim: int, depth: int, out_dim: int) -> tuple[float, float, float]:
        first, body, head = 2 * b * in_dim * w, 2 * b * depth * w * w, 2 * b * w * out_dim
        return first, body, head

    def fwd(parts: tuple[float, float, float]) -> float:
        return sum(parts)

    heads = 1 if cfg.actor_dist == "gaussian_const_std" else 2
    actor = layers(dims.state_dim + dims.goal_dim, net.actor_depth, heads * dims.action_dim)
    phi = layers(dims.state_dim + dims.action_dim, net.critic_depth, net.repr_dim)
    psi = layers(dims.goal_dim, net.critic_depth, net.repr_dim)
    gram = 2 * b * b * net.repr_dim

    e = cfg.num_critics
    actor_loss = 3 * fwd(actor) - actor[0] + e * (2 * fwd(phi) + fwd(psi))
    critic_loss = e * (3 * fwd(phi) - phi[0] + 3 * fwd(psi) - psi[0] + 3 * gram)
    model = actor_loss + critic_loss
    recompute = 0.0
    if resolve_remat(net):
        # One recomputed forward per scanned block; two when remat is nested (groups, then blocks).
        passes = lambda depth: 1 + (remat_groups(depth // BLOCK_LAYERS) > 1)
        recompute = passes(net.actor_depth) * actor[1] + e * passes(net.critic_depth) * (
            2 * phi[1] + psi[1]
        )
    return {"model": model, "executed": model + recompute}


# ---- the machine's matmul peak and the Gram-vs-broadcast energy ---------------------------------


def _median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_peak_gflops(sizes: tuple[int, ...] = (1024, 2048), repeats: int = 10) -> float:
    """Best median float32 GFLOP/s of jitted square matmuls (the machine's practical peak)."""
    best = 0.0
    for n in sizes:
        a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
        b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
        matmul = jax.jit(jnp.matmul)
        seconds = _median_seconds(lambda a=a, b=b, f=matmul: f(a, b), repeats)
        best = max(best, 2 * n**3 / seconds / 1e9)
    return best


def gram_vs_broadcast(batch: int, repr_dim: int, repeats: int = 20) -> dict[str, float]:
    """Seconds of the L2 energy matrix (forward, and forward+backward) in Gram vs broadcast form."""
    from crlkit.losses import L2_EPS, energy_matrix, squared_distances_broadcast

    phi = jax.random.normal(jax.random.key(0), (batch, repr_dim), jnp.float32)
    psi = jax.random.normal(jax.random.key(1), (batch, repr_dim), jnp.float32)
    gram = lambda a, b: energy_matrix(a, b, "l2")
    broadcast = lambda a, b: -jnp.sqrt(squared_distances_broadcast(a, b) + L2_EPS)
    out: dict[str, float] = {"batch": batch, "repr_dim": repr_dim}
    for name, fn in (("gram", gram), ("broadcast", broadcast)):
        f = jax.jit(fn)
        g = jax.jit(jax.grad(lambda a, b, fn=fn: jnp.mean(jax.nn.logsumexp(fn(a, b), 1)), (0, 1)))
        out[f"{name}_fwd_s"] = _median_seconds(lambda f=f: f(phi, psi), repeats)
        out[f"{name}_grad_s"] = _median_seconds(lambda g=g: g(phi, psi), repeats)
    out["speedup_fwd"] = out["broadcast_fwd_s"] / out["gram_fwd_s"]
    out["speedup_grad"] = out["broadcast_grad_s"] / out["gram_grad_s"]
    return out


# ---- one depth (runs inside a fresh subprocess) -------------------------------------------------


def _synthetic_batch(dims: Dims, batch: int) -> Batch:
    ks = jax.random.split(jax.random.key(1), 4)
    return Batch(
        state=jax.random.normal(ks[0], (batch, dims.state_dim), jnp.float32),
        action=jnp.tanh(jax.random.normal(ks[1], (batch, dims.action_dim), jnp.float32)),
        goal=jax.random.normal(ks[2], (batch, dims.goal_dim), jnp.float32),
        actor_goal=jax.random.normal(ks[3], (batch, dims.goal_dim), jnp.float32),
    )


def _peak_mem_mb() -> float:
    device = jax.devices()[0]
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        return stats.get("peak_bytes_in_use", 0) / 2**20
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_depth(depth: int, width: int, batch: int, repeats: int, remat: str, unrolled: bool):
    """Compile and time the jitted, state-donating `update_if_finite` at one depth; a result row.

    `remat` is a NetworkConfig mode (auto, on, off), resolved here as the loops resolve it.
    """
    cfg = LearnerConfig(
        network=NetworkConfig(width=width, critic_depth=depth, actor_depth=depth, remat=remat)
    )
    nets = make_networks(cfg, BENCH_DIMS, unrolled=unrolled)
    state = jax.jit(lambda k: init(nets, cfg, BENCH_DIMS, k))(jax.random.key(0))
    data = _synthetic_batch(BENCH_DIMS, batch)
    params = count_params(state.critic.params) + count_params(state.actor.params)
    bad = jnp.asarray(-1, jnp.int32)

    step = jax.jit(lambda s, b, bad: update_if_finite(nets, cfg, s, b, bad), donate_argnums=0)
    start = time.perf_counter()
    compiled = step.lower(state, data, bad).compile()
    compile_s = time.perf_counter() - start

    state, bad, metrics, _ = compiled(state, data, bad)  # warm-up step
    jax.block_until_ready(metrics)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        state, bad, metrics, _ = compiled(state, data, bad)
        jax.block_until_ready((state, metrics))
        times.append(time.perf_counter() - start)
    step_s = statistics.median(times)
    flops = update_matmul_flops(cfg, BENCH_DIMS, batch)
    # Measured here, right after the steps, so a busy machine slows both alike.
    peak = matmul_peak_gflops()
    return {
        "depth": depth,
        "params": params,
        "compile_s": compile_s,
        "step_s": step_s,
        "gflops": flops["executed"] / step_s / 1e9,
        "model_gflops": flops["model"] / step_s / 1e9,
        "step_gflop": flops["executed"] / 1e9,
        "peak_fraction": flops["executed"] / step_s / 1e9 / peak,
        "model_peak_fraction": flops["model"] / step_s / 1e9 / peak,
        "matmul_peak_gflops": peak,
        "peak_mem_mb": _peak_mem_mb(),
        "remat": resolve_remat(cfg.network),
        "variant": "unrolled" if unrolled else "scanned",
        "finite": bool(bad < 0) and bool(jnp.isfinite(metrics["critic_loss"])),
    }


def _run_subprocess(spec: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Run `measure_depth(**spec)` in a fresh interpreter; returns its row (or a failure row)."""
    cmd = [sys.executable, "-m", "crlkit.bench.learner", json.dumps(spec)]
    failed = {"depth": spec["depth"], "variant": "unrolled" if spec["unrolled"] else "scanned"}
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout_s, env=os.environ
        )
    except subprocess.TimeoutExpired:
        return {**failed, "error": f"timed out after {timeout_s:.0f} s"}
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {**failed, "error": f"exit {proc.returncode}: {last}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_bench(cfg: BenchLearnerConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure every depth (and the unrolled twins if asked); returns the JSON-ready result."""
    peak = matmul_peak_gflops()
    log(f"float32 matmul peak: {peak:.1f} GFLOP/s on {jax.devices()[0].device_kind}")
    gram = gram_vs_broadcast(cfg.batch, NetworkConfig().repr_dim)
    log(
        f"L2 energy at B={cfg.batch}: Gram form {gram['speedup_fwd']:.0f}x faster than broadcast "
        f"(forward), {gram['speedup_grad']:.0f}x (forward+backward)"
    )
    rows = []
    variants = [False, True] if cfg.compare_unrolled else [False]
    log(HEADER)
    for depth in cfg.depths:
        for unrolled in variants:
            if unrolled and depth > cfg.unrolled_max_depth:
                continue
            spec = {
                "depth": depth,
                "width": cfg.width,
                "batch": cfg.batch,
                "repeats": cfg.repeats,
                "remat": cfg.remat,
                "unrolled": unrolled,
            }
            row = _run_subprocess(spec, cfg.timeout_s)
            rows.append(row)
            log(format_row(row))
    return {
        "device": jax.devices()[0].device_kind,
        "platform": jax.devices()[0].platform,
        "matmul_peak_gflops": peak,
        "width": cfg.width,
        "batch": cfg.batch,
        "dims": dataclasses.asdict(BENCH_DIMS),
        "gram_vs_broadcast": gram,
        "results": rows,
    }


HEADER = (
    f"{'depth':>6} {'variant':>9} {'remat':>5} {'params':>12} {'compile_s':>9} {'step_s':>8} "
    f"{'gflops':>7} {'peak%':>6} {'model%':>6} {'peak_mem_mb':>11}"
)


def format_row(row: dict[str, Any]) -> str:
    """One table line for a result row (peak% counts executed FLOPs, model% only useful ones)."""
    if "error" in row:
        return f"{row['depth']:>6} {row['variant']:>9} {row['error']}"
    return (
        f"{row['depth']:>6} {row['variant']:>9} {str(row['remat']):>5} {row['params']:>12,} "
        f"{row['compile_s']:>9.2f} {row['step_s']:>8.4f} {row['gflops']:>7.1f} "
        f"{100 * row['peak_fraction']:>5.1f}% {100 * row['model_peak_fraction']:>5.1f}% "
        f"{row['peak_mem_mb']:>11.0f}"
    )


def _worker_main() -> None:
    spec = json.loads(sys.argv[1])
    print(json.dumps(measure_depth(**spec)))


if __name__ == "__main__":
    _worker_main()
