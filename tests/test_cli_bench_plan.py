"""`crlkit bench plan`: the real online epoch compiled from shapes; sizes add up."""

from __future__ import annotations

import json

from click.testing import CliRunner
from crlkit.cli.main import cli

from crlkit.envs import make_spec

TINY = [
    "--env",
    "pointmaze-medium",
    "--depths",
    "4,8",
    "--num-envs",
    "8",
    "--unroll-length",
    "4",
    "--updates-per-step",
    "2",
    "--batch-size",
    "16",
    "--width",
    "16",
    "--replay-steps-per-env",
    "1000",
]


def test_plan_sizes_the_state_and_counts_flops(tmp_path):
    out = tmp_path / "plan.json"
    result = CliRunner().invoke(cli, ["bench", "plan", *TINY, "--json", str(out)])
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())["rows"]
    assert [r["depth"] for r in rows] == [4, 8]
    spec = make_spec("pointmaze-medium")
    replay = 1000 * 8 * (spec.state_dim + spec.action_dim) * 4  # float32 states and actions
    for row in rows:
        assert row["state_gb"] * 1e9 >= replay and row["total_gb"] >= row["state_gb"]
        assert row["gflop_per_env_step"] > 0 and row["params"] > 0
    deeper, shallower = rows[1], rows[0]
    assert deeper["params"] > shallower["params"]
    assert deeper["gflop_per_env_step"] > shallower["gflop_per_env_step"]


def test_plan_bad_depth_is_one_line():
    result = CliRunner().invoke(cli, ["bench", "plan", "--depths", "4,6"])
    assert result.exit_code == 2 and "multiple of 4" in result.output
