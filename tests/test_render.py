"""`crlkit render` on real tiny run dirs: mp4, gif, png, an offline run, bad input, no GL."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import xla_env
from crlkit.cli.main import cli

TINY_ONLINE = [
    "online",
    "--steps",
    "640",
    "--num-envs",
    "4",
    "--unroll-length",
    "16",
    "--prefill-steps",
    "16",
    "--updates-per-step",
    "2",
    "--batch-size",
    "16",
    "--width",
    "16",
    "--replay-steps-per-env",
    "200",
    "--eval-episodes",
    "2",
    "--eval-episodes-per-task",
    "0",
    "--quiet",
]
SIZE = 64


def _gl_available() -> bool:
    """True when MuJoCo can render offscreen here (EGL or OSMesa installed)."""
    from crlkit.render import NoGLBackend, select_gl_backend

    try:
        select_gl_backend()
    except NoGLBackend:
        return False
    return True


# Videos need an OpenGL library. .ci/run installs Mesa's and sets CRLKIT_REQUIRE_GL=1, so there a
# missing backend fails these tests instead of skipping them.
needs_gl = pytest.mark.skipif(
    not os.environ.get("CRLKIT_REQUIRE_GL") and not _gl_available(),
    reason="no OpenGL for offscreen rendering: apt-get install libegl1 libgl1-mesa-dri libosmesa6",
)


def invoke(*args: str):
    """Runs `crlkit *args` in-process; returns click's result."""
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def online_run(tmp_path_factory) -> Path:
    """A bare `crlkit online` run (quickstart preset: pointmaze-arena) with a tiny budget."""
    out = tmp_path_factory.mktemp("online") / "run"
    result = invoke(*TINY_ONLINE, "--out", str(out))
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory) -> Path:
    """A `crlkit offline` run on the shipped pointmaze-medium sample, a few SGD steps."""
    out = tmp_path_factory.mktemp("offline") / "run"
    result = invoke(
        "offline",
        "--dataset",
        "pointmaze-medium-navigate-sample",
        "--steps",
        "20",
        "--batch-size",
        "64",
        "--width",
        "16",
        "--eval-episodes",
        "1",
        "--quiet",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    return out


def expected_frames(run: Path, episodes: int, frame_skip: int, seed: int = 0) -> int:
    """Frames a video of these episodes must hold (the same deterministic episodes)."""
    from crlkit.render import record_run

    rec = record_run(run, episodes, seed)
    return sum(len(ep.qpos[::frame_skip]) for ep in rec.episodes)


def leftovers(folder: Path) -> list[str]:
    """Hidden temporary files a writer left behind."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@needs_gl
def test_mp4_reads_back_with_every_frame(online_run, tmp_path):
    import imageio.v3 as iio

    out = tmp_path / "eval.mp4"
    result = invoke(
        "render",
        str(online_run),
        "--out",
        str(out),
        "--episodes",
        "2",
        "--size",
        str(SIZE),
        "--frame-skip",
        "4",
    )
    assert result.exit_code == 0, result.output
    frames = iio.imread(out)
    want = expected_frames(online_run, 2, 4)
    assert want >= 100
    assert frames.shape == (want, SIZE, SIZE, 3)
    assert frames.std() > 5  # a rendered scene, not a blank buffer
    assert leftovers(tmp_path) == []
    assert oct(out.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


@needs_gl
def test_gif_plays_for_the_episode_length(online_run, tmp_path):
    from PIL import Image

    out = tmp_path / "eval.gif"
    result = invoke(
        "render",
        str(online_run),
        "--out",
        str(out),
        "--episodes",
        "1",
        "--size",
        str(SIZE),
        "--frame-skip",
        "10",
        "--camera",
        "overview",
    )
    assert result.exit_code == 0, result.output
    with Image.open(out) as gif:
        assert gif.size == (SIZE, SIZE)
        durations = []
        for i in range(gif.n_frames):
            gif.seek(i)
            durations.append(gif.info["duration"])
    # pointmaze: 0.1 s per control step, every 10th rendered -> 1 s per frame; Pillow merges
    # identical frames into longer ones, so the total is what must match.
    assert sum(durations) == expected_frames(online_run, 1, 10) * 1000


def test_png_draws_one_path_per_episode(online_run, tmp_path):
    from matplotlib.figure import Figure

    from crlkit.render import plot_trajectory_map, record_run

    rec = record_run(online_run, episodes=3, seed=1)
    ax = Figure().add_subplot()
    lines = plot_trajectory_map(ax, rec.spec, rec.episodes)
    assert len(lines) == 3
    for line, ep in zip(lines, rec.episodes, strict=True):
        np.testing.assert_allclose(line.get_xydata(), ep.xy)
        assert ep.steps == rec.spec.episode_length or ep.success
    out = tmp_path / "map.png"
    result = invoke("render", str(online_run), "--out", str(out), "--episodes", "3")
    assert result.exit_code == 0, result.output
    import matplotlib.image

    assert matplotlib.image.imread(out).ndim == 3


def test_offline_run_renders_ogbench_task(offline_run, tmp_path):
    from crlkit.render import record_run

    rec = record_run(offline_run, episodes=2, task=2)
    assert rec.regime == "offline" and rec.spec.name == "pointmaze-medium"
    maze = rec.spec.maze
    goal_cell = np.asarray(maze.cell_to_xy(maze.tasks[1][1]))
    for ep in rec.episodes:
        assert np.all(np.abs(ep.goal - goal_cell) <= maze.goal_noise + 1e-5)
    out = tmp_path / "task2.png"
    result = invoke("render", str(offline_run), "--out", str(out), "--task", "2")
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 0


@pytest.fixture(scope="module")
def ant_offline_run(tmp_path_factory) -> Path:
    """An antmaze-medium offline run on whole goal observations (the default offline preset)."""
    folder = tmp_path_factory.mktemp("antmaze")
    data = folder / "ant.npz"
    result = invoke(
        "collect",
        "--env",
        "antmaze-medium",
        "--policy",
        "random",
        "--steps",
        "400",
        "--episode-length",
        "100",
        "--num-envs",
        "4",
        "--out",
        str(data),
    )
    assert result.exit_code == 0, result.output
    run = folder / "run"
    result = invoke(
        "offline",
        "--dataset",
        str(data),
        "--steps",
        "5",
        "--batch-size",
        "32",
        "--width",
        "16",
        "--eval-episodes",
        "1",
        "--quiet",
        "--out",
        str(run),
    )
    assert result.exit_code == 0, result.output
    return run


@pytest.fixture(scope="module")
def open_floor_run(tmp_path_factory) -> Path:
    """A `crlkit online --env ant` run (the paper's open floor) with a tiny budget."""
    out = tmp_path_factory.mktemp("ant") / "run"
    result = invoke(*TINY_ONLINE, "--env", "ant", "--out", str(out))
    assert result.exit_code == 0, result.output
    return out


def test_offline_run_with_whole_observation_goals(ant_offline_run, tmp_path):
    """OGBench's goal space (the default offline preset): the actor takes goal observations."""
    from crlkit.render import record_run

    rec = record_run(ant_offline_run, episodes=2, task=1)
    assert rec.spec.name == "antmaze-medium" and len(rec.episodes) == 2
    out = tmp_path / "ant.png"
    result = invoke("render", str(ant_offline_run), "--out", str(out), "--episodes", "2")
    assert result.exit_code == 0, result.output
    assert out.is_file()


@needs_gl
def test_write_outputs_puts_video_and_map_in_the_run_dir(online_run, tmp_path):
    from crlkit.render import write_outputs

    run = tmp_path / "run"
    shutil.copytree(online_run, run)
    written = write_outputs(run, episodes=1, size=SIZE)
    assert [p.name for p in written] == ["trajectories.png", "eval.mp4"]
    assert all(p.stat().st_size > 0 for p in written)


def _bad_cases(run: Path, tmp: Path) -> dict[str, tuple[list[str], str]]:
    empty = tmp / "no-checkpoint"
    empty.mkdir()
    shutil.copy(run / "config.json", empty / "config.json")
    a_file = tmp / "plain-file"
    a_file.write_text("x")
    return {
        "no checkpoint": ([str(empty), "--out", str(tmp / "a.png")], "no checkpoint"),
        "unknown task": ([str(run), "--out", str(tmp / "b.png"), "--task", "9"], "unknown task 9"),
        "bad suffix": ([str(run), "--out", str(tmp / "c.avi")], "'.avi'"),
        "unwritable": ([str(run), "--out", str(a_file / "d.png")], "cannot write"),
        "bad step": ([str(run), "--out", str(tmp / "e.png"), "--step", "7"], "step 7"),
    }


@pytest.mark.parametrize(
    "case", ["no checkpoint", "unknown task", "bad suffix", "unwritable", "bad step"]
)
def test_bad_input_is_one_line_exit_2_and_no_file(online_run, tmp_path, case):
    args, says = _bad_cases(online_run, tmp_path)[case]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = CliRunner().invoke(cli, ["render", *args])
    assert result.exit_code == 2, result.output
    assert result.output.strip().count("\n") == 0 and says in result.output
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_without_gl_the_video_fails_in_one_line_and_the_png_still_works(online_run, tmp_path):
    # PyOpenGL pinned to another platform than MUJOCO_GL: MuJoCo cannot make a context.
    env = {**os.environ, "MUJOCO_GL": "osmesa", "PYOPENGL_PLATFORM": "egl"}
    command = [str(Path(sys.executable).with_name("crlkit")), "render", str(online_run), "--out"]
    video = subprocess.run(
        [*command, str(tmp_path / "v.mp4")], env=env, capture_output=True, text=True, timeout=600
    )
    assert video.returncode == 1, video.stderr
    assert video.stderr.strip().count("\n") == 0 and "GL" in video.stderr
    assert list(tmp_path.iterdir()) == []
    png = subprocess.run(
        [*command, str(tmp_path / "m.png")], env=env, capture_output=True, text=True, timeout=600
    )
    assert png.returncode == 0, png.stderr
    assert (tmp_path / "m.png").is_file()


def test_gl_probe_rejects_a_backend_that_cannot_load():
    from crlkit.render import gl

    assert not gl._probe("no-such-backend")
    assert gl.select_gl_backend() in (os.environ.get("MUJOCO_GL"), *gl.CANDIDATES)


def test_run_config_of_an_offline_run_names_its_env(offline_run):
    from crlkit.render.policy import run_env

    config = json.loads((offline_run / "config.json").read_text())
    assert config["dataset"]["eval_env"] == ["crlkit", "pointmaze-medium"]  # what the loop used
    assert run_env(config, offline_run) == ("offline", "pointmaze-medium")
    del config["dataset"]["eval_env"]  # a run made before the loop recorded it
    assert run_env(config, offline_run) == ("offline", "pointmaze-medium")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@needs_gl
def test_online_video_flag_writes_the_video_and_map_into_the_run_dir(tmp_path):
    out = tmp_path / "run"
    result = invoke(*TINY_ONLINE, "--steps", "128", "--video", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert (out / "trajectories.png").read_bytes().startswith(b"\x89PNG")
    import imageio.v3 as iio

    assert iio.imread(out / "eval.mp4").shape[0] >= 100


def test_render_never_opens_the_replay_buffer(online_run, tmp_path):
    """The actor is a partial restore of the state item: a run whose checkpoints lost their
    replay item (and a fresh process reading it) still renders."""
    run = tmp_path / "run"
    shutil.copytree(online_run, run)
    removed = [shutil.rmtree(p) or p for p in (run / "checkpoints").glob("ckpt_*/replay")]
    assert removed  # the quickstart saves its buffer: there was one to remove
    out = tmp_path / "map.png"
    result = invoke("render", str(run), "--out", str(out), "--episodes", "1")
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 0


@pytest.mark.slow  # a 2-device run in a subprocess, then render here: ~1-2 min on 2 cores
def test_render_of_a_two_device_run_writes_its_png(tmp_path):
    """A checkpoint saved on another device layout (2 forced CPU devices) restores onto this
    process's one device."""
    run = tmp_path / "run"
    env = xla_env(devices=2, compile_bound=True)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from crlkit.cli.main import cli; cli()",
            *TINY_ONLINE,
            "--out",
            str(run),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((run / "summary.json").read_text())["devices"] == 2
    out = tmp_path / "two.png"
    result = invoke("render", str(run), "--out", str(out), "--episodes", "1")
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 0


# ---- value maps (--kind value) ------------------------------------------------------------------


@pytest.mark.parametrize(
    "fixture,args,env",
    [
        ("online_run", [], "pointmaze-arena"),
        ("offline_run", ["--task", "2"], "pointmaze-medium"),
        ("ant_offline_run", ["--goal", "8,8"], "antmaze-medium"),  # whole-observation goals
        ("open_floor_run", [], "ant"),
    ],
)
def test_value_map_png_for_maze_and_open_floor_runs(request, tmp_path, fixture, args, env):
    import matplotlib.image

    from crlkit.render import compute_value_map

    run = request.getfixturevalue(fixture)
    out = tmp_path / "value.png"
    result = invoke("render", str(run), "--out", str(out), "--kind", "value", *args)
    assert result.exit_code == 0, result.output
    assert matplotlib.image.imread(out).ndim == 3
    assert leftovers(tmp_path) == []
    goal = tuple(float(v) for v in args[1].split(",")) if args[:1] == ["--goal"] else None
    vm = compute_value_map(run, goal_xy=goal, task=2 if "--task" in args else None)
    assert vm.spec.name == env
    free = np.isfinite(vm.actor_q)
    assert free.sum() >= 50 and np.all(vm.max_q[free] >= vm.actor_q[free] - 1e-6)
    if vm.spec.maze is not None:  # NaN exactly on wall points
        gx, gy = np.meshgrid(vm.xs, vm.ys)
        walls = ~np.asarray(vm.spec.maze.is_free(np.stack([gx, gy], -1)))
        assert np.array_equal(~free, walls)
    if goal is not None:
        np.testing.assert_allclose(vm.goal_xy, goal)
        np.testing.assert_allclose(vm.episode.goal_xy, goal, atol=1e-6)


def test_value_map_holds_the_energies_computed_directly(online_run):
    """Three cells of the drawn heat map against Q(s, pi(s, g), g) computed from the checkpoint
    (pointmaze: the state is the xy itself)."""
    import jax
    from matplotlib.figure import Figure

    from crlkit import learner
    from crlkit.envs import make
    from crlkit.render import compute_value_map, plot_value_map
    from crlkit.runs.actor import load_actor, load_critic

    goal = (4.0, 4.0)
    vm = compute_value_map(online_run, goal_xy=goal)
    drawn = np.asarray(plot_value_map(Figure().add_subplot(), vm).get_array())
    spec = make("pointmaze-arena", "native").spec
    nets, actor = load_actor(online_run, spec)
    cfg, critic = load_critic(online_run, spec)
    free = np.argwhere(np.isfinite(vm.actor_q))
    cells = free[[0, len(free) // 2, len(free) - 1]]
    states = np.stack([[vm.xs[j], vm.ys[i]] for i, j in cells]).astype(np.float32)
    goals = np.tile(np.asarray(goal, np.float32), (3, 1))
    action = learner.act(nets, actor, states, goals, jax.random.key(0), deterministic=True)
    direct = learner.q_value(nets, cfg, critic, states, action, goals)
    assert len(np.unique(np.asarray(direct))) == 3  # three different values, not one
    for (i, j), q in zip(cells, np.asarray(direct), strict=True):
        np.testing.assert_allclose(vm.actor_q[i, j], q, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(drawn[i, j], q, rtol=1e-5, atol=1e-6)


def _value_bad_cases(run: Path, tmp: Path) -> dict[str, tuple[list[str], str]]:
    arm = tmp / "arm-run"
    shutil.copytree(run, arm)
    config = json.loads((arm / "config.json").read_text())
    config["online"]["env"] = "arm-push-easy"
    (arm / "config.json").write_text(json.dumps(config))
    value = ["--kind", "value"]
    return {
        "no planar map": (
            [str(arm), "--out", str(tmp / "a.png"), *value],
            "'arm-push-easy' (panda body) has no planar map",
        ),
        "goal outside the maze": (
            [str(run), "--out", str(tmp / "b.png"), *value, "--goal", "100,3"],
            "goal (100, 3) is not on a free cell",
        ),
        "goal and task": (
            [str(run), "--out", str(tmp / "c.png"), *value, "--goal", "4,4", "--task", "1"],
            "--goal or --task",
        ),
        "video suffix": ([str(run), "--out", str(tmp / "d.mp4"), *value], "writes a .png"),
        "goal without value": (
            [str(run), "--out", str(tmp / "e.png"), "--goal", "4,4"],
            "--goal is for --kind value",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "no planar map",
        "goal outside the maze",
        "goal and task",
        "video suffix",
        "goal without value",
    ],
)
def test_value_map_bad_input_is_one_line_exit_2_and_no_file(online_run, tmp_path, case):
    args, says = _value_bad_cases(online_run, tmp_path)[case]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = CliRunner().invoke(cli, ["render", *args])
    assert result.exit_code == 2, result.output
    assert result.output.strip().count("\n") == 0 and says in result.output, result.output
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_value_map_goal_must_be_two_numbers(online_run, tmp_path):
    result = CliRunner().invoke(
        cli,
        [
            "render",
            str(online_run),
            "--out",
            str(tmp_path / "v.png"),
            "--kind",
            "value",
            "--goal",
            "4",
        ],
    )
    assert result.exit_code == 2 and "expected X,Y (two numbers), got '4'" in result.output
    assert list(tmp_path.iterdir()) == []


def test_report_gallery_adds_a_value_row_with_one_goal_for_every_depth(online_run, tmp_path):
    """The report's gallery: a trajectory row and a value-map row; every depth maps one goal."""
    import matplotlib.image

    from crlkit.experiments import report_gallery
    from crlkit.experiments.report_data import group_runs, load_runs
    from crlkit.render import compute_value_map

    sweep_dir = tmp_path / "sweep"
    shutil.copytree(online_run, sweep_dir / "online-d4-s0")
    deeper = tmp_path / "deeper"
    result = invoke(*TINY_ONLINE, "--steps", "128", "--depth", "8", "--out", str(deeper))
    assert result.exit_code == 0, result.output
    shutil.copytree(deeper, sweep_dir / "online-d8-s0")
    groups = group_runs(load_runs(sweep_dir))
    assert sorted(g.depth for g in groups) == [4, 8]
    notes: list[str] = []
    out = tmp_path / "gallery.png"
    assert report_gallery.plot_gallery(groups, out, notes.append)
    assert notes == []  # every panel drawn, value maps included
    height, width = matplotlib.image.imread(out).shape[:2]
    assert height > 0.8 * width  # two rows (trajectories, values) for the one regime
    goals = [
        compute_value_map(sweep_dir / n, seed=report_gallery.GALLERY_SEED).goal_xy
        for n in ("online-d4-s0", "online-d8-s0")
    ]
    np.testing.assert_array_equal(goals[0], goals[1])


def test_value_map_rollout_heads_for_the_goal_drawn_with_its_start(offline_run):
    """Without --goal the rollout runs from the reset state the map is built on to that reset's
    goal (a start-goal pair drawn together), on the maze's fixed task too."""
    from crlkit.render import compute_value_map

    for task in (None, 3):
        vm = compute_value_map(offline_run, task=task, seed=1)
        np.testing.assert_allclose(vm.episode.goal_xy, vm.goal_xy, atol=1e-6)
        assert np.linalg.norm(vm.episode.xy[0] - vm.goal_xy) > vm.spec.success_radius
