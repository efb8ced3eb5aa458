"""`crlkit bench learner` end to end (tiny) and its bad-input errors."""

import json

import pytest
from click.testing import CliRunner
from crlkit.cli.main import cli

from crlkit.bench.learner import ROW_KEYS, BenchLearnerConfig, update_matmul_flops
from crlkit.config import LearnerConfig, NetworkConfig
from crlkit.learner import Dims


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--depths", "4,6"], "6"),
        (["--depths", "4,x"], "4,x"),
        (["--width", "0"], "width"),
        (["--batch", "1"], "batch"),
        (["--remat", "maybe"], "maybe"),
        (["--loop", "train"], "train"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, fragment):
    result = CliRunner().invoke(cli, ["bench", "learner", *args])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and fragment in errors[0]


def test_tiny_bench_writes_json_rows(tmp_path):
    # Rows time update_if_finite (the loops' step) with remat auto, resolved as the loops do.
    out = tmp_path / "bench.json"
    args = ["--depths", "4,8", "--width", "8", "--batch-size", "8", "--repeats", "1"]
    args += ["--compare-unrolled", "--unrolled-max-depth", "4", "--json", str(out)]
    result = CliRunner().invoke(cli, ["bench", "learner", *args])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    rows = data["results"]
    assert [(r["depth"], r["variant"]) for r in rows] == [
        (4, "scanned"),
        (4, "unrolled"),
        (8, "scanned"),
    ]
    for row in rows:
        assert set(ROW_KEYS) <= set(row) and row["finite"]
        assert row["step_s"] > 0 and row["compile_s"] > 0 and row["peak_mem_mb"] > 0
        assert 0 < row["peak_fraction"] < 2
    assert rows[0]["params"] == rows[1]["params"] < rows[2]["params"]
    assert all(row["remat"] is True for row in rows)  # auto resolves to on on a CPU
    assert data["matmul_peak_gflops"] > 0 and data["gram_vs_broadcast"]["speedup_grad"] > 0
    assert "Gram form" in result.output


def test_flop_count_by_hand():
    # width 2, depth 4, B=1, repr 1, dims (1, 1, 1): per-layer forward 2*B*in*out.
    # actor: in 2 -> 2 (8), 4 blocks layers 2x2 (32), head 2 -> 2 (8): fwd 48, +bwd: 3*48 - 8 = 136
    # phi: in 2 -> 2 (8), body 32, head 2 -> 1 (4): fwd 44; psi: in 1 -> 2 (4), 32, 4: fwd 40
    # actor loss: 136 + 2*44 + 40 = 264; critic: 3*44 - 8 + 3*40 - 4 + 3 * (2*1*1*1) = 246
    net = NetworkConfig(width=2, critic_depth=4, actor_depth=4, repr_dim=1, remat="off")
    flops = update_matmul_flops(LearnerConfig(network=net), Dims(1, 1, 1), batch=1)
    assert flops["model"] == flops["executed"] == 264 + 246
    # Two critics, constant-std actor (mean head only: 2 -> 1 costs 4, actor fwd 44, +bwd 124):
    # actor loss 124 + 2 * (2*44 + 40) = 380; critic loss 2 * 246 = 492
    ogb = LearnerConfig(
        network=net, num_critics=2, actor_loss="ddpg_bc", actor_dist="gaussian_const_std"
    )
    assert update_matmul_flops(ogb, Dims(1, 1, 1), batch=1)["model"] == 380 + 492
    # remat recomputes the blocks (32 each) of actor, phi (twice) and psi: +128 executed
    remat = LearnerConfig(network=NetworkConfig(width=2, repr_dim=1, remat="on"))
    assert update_matmul_flops(remat, Dims(1, 1, 1), batch=1)["executed"] == 264 + 246 + 128


def test_auto_remat_turns_on_for_deep_networks():
    cfg = BenchLearnerConfig(depths=(4, 1024))
    assert not cfg.remat_for(4, "gpu") and cfg.remat_for(1024, "gpu") and cfg.remat_for(4, "cpu")
    assert BenchLearnerConfig(remat="on").remat_for(4, "gpu")
    assert not BenchLearnerConfig(remat="off").remat_for(1024, "cpu")


@pytest.mark.slow  # two tiny real runs of the offline loop, each in a fresh process: ~30 s
def test_loop_mode_reports_the_peak_memory_of_the_real_offline_loop(tmp_path):
    out = tmp_path / "loop.json"
    args = ["--loop", "offline", "--depths", "4,8", "--width", "16", "--batch", "16"]
    result = CliRunner().invoke(cli, ["bench", "learner", *args, "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "crlkit offline --dataset pointmaze-medium-navigate-sample" in result.output
    data = json.loads(out.read_text())
    assert data["config"]["loop"] == "offline"
    rows = data["rows"]
    assert [r["depth"] for r in rows] == [4, 8] and all("error" not in r for r in rows), rows
    # The whole process (Python, JAX, dataset, compiled loop): hundreds of MiB, not zero.
    assert all(200 < r["peak_mem_mb"] < 8000 and r["wall_s"] > 0 for r in rows), rows
