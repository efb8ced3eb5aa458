"""`crlkit reproduce`: the reference numbers against the published figures, the dry-run listing,
bad input, and a tiny Table 1 row run on a CPU with the paper's number beside crlkit's."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from crlkit.cli.main import cli

from crlkit.experiments import reproduce

# The paper's Table 1 (time at goal, depth 4 and depth 64, width 256), as printed in the paper
# ("1000 Layer Networks for Self-Supervised RL", NeurIPS 2025) and copied into
# shared/REFERENCE.md §1 "Headline results".
PAPER_TABLE1 = {
    "arm-binpick-hard": (38, 219),
    "arm-push-easy": (308, 762),
    "arm-push-hard": (171, 410),
    "ant-u4-maze": (11.4, 286),
    "ant-u5-maze": (0.97, 61),
    "ant-big-maze": (61, 441),
    "ant-hardest-maze": (215, 387),
    "humanoid": (12.6, 649),
    "humanoid-u-maze": (3.2, 159),
    "humanoid-big-maze": (0.06, 59),
}
# OGBench's CRL success (%) as published (REFERENCE.md §2 "Success (%) of CRL").
OGBENCH_CRL = {
    "antmaze-medium-navigate-v0": 95,
    "antmaze-large-navigate-v0": 83,
    "antmaze-giant-navigate-v0": 16,
    "humanoidmaze-medium-navigate-v0": 60,
    "humanoidmaze-large-navigate-v0": 24,
    "humanoidmaze-giant-navigate-v0": 3,
    "antsoccer-arena-navigate-v0": 23,
    "cube-single-play-v0": 19,
    "scene-play-v0": 19,
}


def _run(args: list[str]):
    return CliRunner().invoke(cli, ["reproduce", *args])


def test_reference_file_holds_the_published_figures_with_their_sources():
    ref = reproduce.load_reference()
    table1 = ref["table1"]
    assert {row: (v["depths"]["4"], v["depths"]["64"]) for row, v in table1["rows"].items()} == (
        PAPER_TABLE1
    )
    assert table1["rows"]["humanoid-big-maze"]["paper_name"] == "humanoid_big_maze"
    assert "Table 1" in table1["source"] and "NeurIPS 2025" in table1["source"]
    assert table1["cost"]["gpu_hours"] == {"4": 1.48, "64": 10.99}
    ogbench = ref["ogbench-crl"]
    assert {row: v["success"] for row, v in ogbench["rows"].items()} == OGBENCH_CRL
    assert "OGBench" in ogbench["source"]
    assert table1["metric"] == "eval/steps_at_goal" and ogbench["metric"] == "eval/success"


def test_reference_file_is_package_data():
    text = open("pyproject.toml").read()
    assert '"crlkit.experiments" = ["reference.json"]' in text
    assert reproduce.REFERENCE_FILE.parent.name == "experiments"


def test_table1_dry_run_lists_60_cells_with_commands_and_hours(tmp_path):
    result = _run(["table1", "--dry-run", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if " online-d" in line]
    assert len(lines) == 60  # 10 rows x 2 depths x 3 seeds
    rows = {line.split()[0] for line in lines}
    assert rows == set(PAPER_TABLE1)
    assert {line.split()[1] for line in lines} == {
        f"online-d{d}-s{s}" for d in (4, 64) for s in range(3)
    }
    first = next(line for line in lines if line.startswith("ant-u4-maze ") and "-d4-s0" in line)
    hours = float(first.split()[2].replace(",", ""))
    assert hours > 0
    assert (
        "crlkit online --preset paper --env ant-u4-maze --depth 4 --seed 0 --out "
        f"{tmp_path / 'r' / 'table1' / 'ant-u4-maze' / 'online-d4-s0'}"
    ) in first
    assert "60 cells (10 rows); estimated total" in result.output
    assert "CPU hours" in result.output and "estimate: SGD matmul FLOPs" in result.output
    assert not (tmp_path / "r").exists()  # a dry run writes nothing


def test_dry_run_cut_down_by_rows_depths_seeds_and_steps():
    result = _run(
        [
            "table1",
            "--dry-run",
            "--rows",
            "humanoid,ant-u4-maze",
            "--depths",
            "4",
            "--seeds",
            "2",
            "--steps",
            "2000000",
        ]
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if " online-d" in line]
    assert len(lines) == 4 and all("--steps 2000000" in line for line in lines)


def test_ogbench_dry_run_lists_the_navigate_datasets():
    result = _run(["ogbench-crl", "--dry-run"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if " offline-d3-" in line]
    navigate = [n for n in OGBENCH_CRL if n.startswith(("antmaze", "humanoidmaze"))]
    assert {line.split()[0] for line in lines} == set(navigate) and len(lines) == 18
    assert "crlkit offline --preset ogbench --dataset antmaze-medium-navigate-v0 --seed 0" in (
        result.output
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["table2"], "unknown table 'table2'; valid: table1, ogbench-crl"),
        (
            ["table1", "--rows", "ant-u6-maze"],
            "unknown row 'ant-u6-maze' of table1; valid: ant-u4-maze, ant-u5-maze",
        ),
        (
            ["ogbench-crl", "--rows", "pointmaze-medium-navigate-v0"],
            "unknown row 'pointmaze-medium-navigate-v0' of ogbench-crl; valid: antmaze-medium",
        ),
        (["table1", "--jobs", "0"], "--jobs must be an integer >= 1"),
        (["table1", "--seeds", "0"], "seeds must be integers >= 1, got 0"),
        (["table1", "--depths", "6"], "depths must be a positive multiple of 4"),
    ],
)
def test_bad_reproduce_input_is_one_line_with_exit_code_2(tmp_path, args, message):
    result = _run([*args, "--out", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_a_table1_row_runs_on_a_cpu_with_the_papers_number_beside_crlkits(tmp_path):
    out = tmp_path / "r"
    args = [
        "table1",
        "--rows",
        "ant-u4-maze",
        "--depths",
        "4",
        "--seeds",
        "1",
        "--steps",
        "20000",
        "--out",
        str(out),
    ]
    result = _run(args)
    assert result.exit_code == 0, result.output
    text = (out / "table1" / reproduce.REPORT).read_text()
    row = next(line for line in text.splitlines() if line.startswith("| ant-u4-maze | 4 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    published, crlkit, difference = float(cells[2]), float(cells[3]), float(cells[4])
    assert published == 11.4
    assert difference == pytest.approx(crlkit - 11.4, abs=0.011)
    assert cells[5] == "–" and cells[6] == "1/1" and float(cells[7]) > 0  # 1 seed: no spread
    assert "CPU hours" in text and "Table 1" in text
    assert "crlkit reproduce table1 --out" in text  # the command that made it
    summary = json.loads(
        (out / "table1" / "ant-u4-maze" / "online-d4-s0" / "summary.json").read_text()
    )
    assert summary["env_steps"] >= 20000 and crlkit == pytest.approx(
        summary["eval/steps_at_goal"], abs=0.006
    )
    manifest = json.loads((out / "table1" / reproduce.MANIFEST).read_text())
    assert manifest["rows"] == ["ant-u4-maze"] and manifest["device"] == "cpu"
    # Run again: the cell is done, nothing trains, the report is the same.
    again = _run(args)
    assert again.exit_code == 0 and "0 ran, 1 were done before" in again.output


@pytest.mark.parametrize("command", ["sweep", "reproduce"])
def test_help_shows_real_defaults_without_parentheses(command):
    text = CliRunner().invoke(cli, [command, "--help"], terminal_width=200).output
    assert "()" not in text and "[default: (" not in text
    assert "--launcher [auto|inline|local|slurm]" in text and "--slurm-config" in text
    if command == "sweep":
        assert "[default: 4,16,64]" in text and "--jobs INTEGER" in text
    else:
        assert "--rows TEXT" in text and "--dry-run" in text


def test_ogbench_without_dataset_files_skips_each_row_and_stops_with_one_line(tmp_path):
    from crlkit.data.catalog import find_card, local_path

    rows = reproduce.valid_rows("ogbench-crl")
    if any(local_path(find_card(r)[0]) is not None for r in rows):
        pytest.skip("an OGBench navigate dataset is present on this machine")
    result = _run(["ogbench-crl", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1] == (
        "Error: none of the rows' datasets is present on this machine; "
        "crlkit datasets lists them and where their files go"
    )
    assert sum("dataset files not present here, row skipped" in line for line in lines) == 6
    assert not (tmp_path / "r").exists()
