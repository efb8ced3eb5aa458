"""Run directories: atomic checkpoints, refusing/resuming run dirs, metrics files, kill-safety."""

import csv
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import flax.struct
import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import optax
import pytest
from conftest import assert_trees_equal

from crlkit.data import replay
from crlkit.runs import progress, rundir
from crlkit.runs.checkpoint import Checkpoints
from crlkit.runs.rundir import RunDir, RunDirError
from crlkit.runs.sinks import TrackingConfig


@dataclasses.dataclass(frozen=True)
class LearnerCfg:
    depth: int = 4
    width: int = 256
    energy: str = "l2"


@dataclasses.dataclass(frozen=True)
class LoopCfg:
    steps: int = 1000
    seed: int = 0
    hidden: tuple = (64, 64)


CONFIG = {"learner": LearnerCfg(), "online": LoopCfg()}


@flax.struct.dataclass
class TrainState:
    params: dict
    opt_state: optax.OptState
    key: jax.Array
    raw_key: jax.Array
    step: jax.Array


def _state(seed: int) -> dict:
    """A nested pytree like a real checkpoint: params, Adam state, keys, counters, a buffer."""
    k = jax.random.key(seed)
    params = {"dense": {"kernel": jax.random.normal(k, (3, 4)), "bias": jnp.arange(4.0) + seed}}
    buffer = replay.init({"obs": jnp.zeros(2)}, num_envs=2, capacity=8)
    buffer = replay.insert(
        buffer, {"obs": jnp.full((2, 2, 2), seed, jnp.float32)}, jnp.ones((2, 2), bool)
    )
    return {
        "train": TrainState(
            params=params,
            opt_state=optax.adam(1e-3).init(params),
            key=jax.random.split(k, 3),
            raw_key=jax.random.PRNGKey(seed),
            step=jnp.int32(seed),
        ),
        "buffer": buffer,
        "host": {"episodes": seed, "half": np.full(3, seed, ml_dtypes.bfloat16)},
    }


def test_checkpoint_round_trip_of_a_nested_pytree(tmp_path):
    saved = _state(seed=7)
    ckpts = Checkpoints(tmp_path)
    path = ckpts.save(1234, saved, meta={"env_steps": 1234})
    assert path.name == "ckpt_000000001234"
    assert sorted(p.name for p in path.iterdir() if not p.name.startswith("_")) == [
        "commit_success.txt",
        "meta",
        "state",
    ]
    tree, step, meta, _ = ckpts.load(1234, _state(seed=0))
    assert step == 1234 and meta == {"env_steps": 1234}
    assert_trees_equal(saved, tree)
    assert tree["train"].key.dtype == saved["train"].key.dtype  # typed PRNG keys stay typed
    assert tree["host"]["half"].dtype == ml_dtypes.bfloat16 and tree["host"]["episodes"] == 7
    # A template of shapes only (jax.eval_shape) also works: nothing allocated twice.
    shapes = jax.eval_shape(lambda: _state(seed=0))
    shapes["host"] = _state(seed=0)["host"]  # host values are not traceable
    tree2 = ckpts.load(1234, shapes).tree
    assert_trees_equal(saved["train"], tree2["train"])
    assert os.listdir(tmp_path) == [path.name]  # no temp files left behind


def test_checkpoint_into_a_different_model_is_refused(tmp_path):
    ckpts = Checkpoints(tmp_path)
    ckpts.save(1, {"w": jnp.zeros((3, 4)), "b": jnp.zeros(4)})
    with pytest.raises(
        RunDirError, match=r"leaf \['w'\] has shape \(3, 4\); the run expects \(5, 4\)"
    ):
        ckpts.load(1, {"w": jnp.zeros((5, 4)), "b": jnp.zeros(4)})
    with pytest.raises(RunDirError, match="holds 2 arrays but the run expects 1"):
        ckpts.load(1, {"w": jnp.zeros((3, 4))})
    with pytest.raises(RunDirError, match=r"leaf \['b'\] has dtype float32; the run expects int32"):
        ckpts.load(1, {"b": jnp.zeros(4, jnp.int32), "w": jnp.zeros((3, 4))})


def test_existing_run_dir_is_refused_without_resume(tmp_path):
    out = tmp_path / "run"
    RunDir.create(out, CONFIG).close()
    with pytest.raises(RunDirError) as err:
        RunDir.create(out, CONFIG)
    assert str(err.value) == (
        f"run dir {out} already exists; resume it with --resume or choose another --out"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    RunDir.create(empty, CONFIG).close()  # an empty folder is fine
    assert json.loads((empty / "config.json").read_text())["learner"]["depth"] == 4


def test_resume_lists_the_config_fields_that_differ(tmp_path):
    out = tmp_path / "run"
    RunDir.create(out, CONFIG).close()
    other = {"learner": LearnerCfg(depth=16, energy="dot"), "online": LoopCfg(steps=5000)}
    with pytest.raises(RunDirError) as err:
        RunDir.create(out, other, resume=True)
    message = str(err.value)
    assert "\n" not in message
    assert message == (
        f"cannot resume {out}: its config differs in 3 field(s): learner.depth (stored 4, now 16);"
        ' learner.energy (stored "l2", now "dot"); online.steps (stored 1000, now 5000)'
    )
    # A longer budget may be allowed explicitly; the stored config then records it.
    allowed = {"learner": LearnerCfg(), "online": LoopCfg(steps=5000)}
    RunDir.create(out, allowed, resume=True, ignore_on_resume=["online.steps"]).close()
    assert json.loads((out / "config.json").read_text())["online"]["steps"] == 5000
    with pytest.raises(RunDirError, match="no config.json there"):
        RunDir.create(tmp_path / "nothing", CONFIG, resume=True)


def test_metrics_jsonl_and_csv_with_growing_columns(tmp_path):
    with RunDir.create(tmp_path / "run", CONFIG) as run:
        run.log(100, {"loss": jnp.float32(0.5)})
        run.log(200, {"loss": 0.25, "eval/success": np.float64(0.75)})
        run.log(300, {"loss": float("nan")})
        with pytest.raises(ValueError, match="metric 'vec' is not a scalar"):
            run.log(400, {"vec": np.zeros(3)})
        run.write_summary({"env_steps": 300, "success": 0.75})
    lines = [json.loads(x) for x in (run.path / "metrics.jsonl").read_text().splitlines()]
    assert [e["step"] for e in lines] == [100, 200, 300]
    assert lines[2]["loss"] is None  # strict JSON: non-finite values are null
    with open(run.path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["step", "time", "loss", "eval/success"]
    assert [r["eval/success"] for r in rows] == ["", "0.75", ""]
    assert [r["loss"] for r in rows] == ["0.5", "0.25", ""]
    assert json.loads((run.path / "summary.json").read_text()) == {
        "env_steps": 300,
        "success": 0.75,
    }


def test_resume_restores_latest_checkpoint_and_drops_later_events(tmp_path):
    out = tmp_path / "run"
    with RunDir.create(out, CONFIG, keep_checkpoints=2) as run:
        for step in range(1, 6):
            run.log(step * 10, {"loss": 1.0 / step})
            if step in (1, 2, 3):
                run.save_checkpoint(_state(step), step * 10)
    assert [s for s, _ in rundir.list_checkpoints(out / "checkpoints")] == [20, 30]  # kept K=2
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"step": 60, "loss"')  # a line torn by a kill
    with RunDir.create(out, CONFIG, resume=True) as run:
        tree, step, _, _ = run.restore(_state(0))
        assert step == 30
        assert_trees_equal(_state(3), tree)
        assert [e["step"] for e in run.events] == [10, 20, 30]
        run.log(40, {"loss": 0.1})
    with open(out / "metrics.csv") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [10, 20, 30, 40]


def test_restore_without_checkpoint_restarts_cleanly(tmp_path):
    out = tmp_path / "run"
    with RunDir.create(out, CONFIG) as run:
        run.log(10, {"loss": 1.0})
    with RunDir.create(out, CONFIG, resume=True) as run:
        assert run.restore(_state(0)) is None
        assert run.events == []


def _damage(path) -> None:
    """Disk damage, not a kill (orbax's renames never leave a torn save under a step's name)."""
    for f in (path / "state").rglob("*"):
        if f.is_file():
            f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def test_a_damaged_latest_checkpoint_is_set_aside_in_one_line(tmp_path):
    out = tmp_path / "run"
    with RunDir.create(out, CONFIG) as run:
        run.save_checkpoint(_state(1), 10)
    ckpts = out / "checkpoints"
    shutil.copytree(ckpts / "ckpt_000000000010", ckpts / "ckpt_000000000020")
    _damage(ckpts / "ckpt_000000000020")
    lines = []
    with RunDir.create(out, CONFIG, resume=True) as run:
        _, step, _, _ = run.restore(_state(0), echo=lines.append)
    assert step == 10
    assert len(lines) == 1 and "ckpt_000000000020 is unreadable" in lines[0]
    assert "\n" not in lines[0] and "set aside" in lines[0]
    assert (ckpts / "ckpt_000000000020.corrupt").exists()


def test_every_checkpoint_unreadable_refuses_the_resume_unless_started_over(tmp_path):
    out = tmp_path / "run"
    with RunDir.create(out, CONFIG) as run:
        run.log(10, {"loss": 1.0})
        run.save_checkpoint(_state(1), 10)
    _damage(out / "checkpoints" / "ckpt_000000000010")
    with RunDir.create(out, CONFIG, resume=True) as run:
        with pytest.raises(RunDirError) as err:
            run.restore(_state(0), echo=lambda _: None)
    assert "\n" not in str(err.value)
    assert str(err.value).startswith(f"cannot resume {out}: every checkpoint is unreadable")
    assert "--start-over" in str(err.value)
    with RunDir.create(out, CONFIG, resume=True) as run:  # explicitly: from step 0
        assert run.restore(_state(0), echo=lambda _: None, start_over=True) is None
        assert run.events == []


def test_a_budget_below_the_runs_progress_is_refused(tmp_path):
    out = tmp_path / "run"
    with RunDir.create(out, CONFIG) as run:
        run.save_checkpoint(_state(1), 500)
    smaller = {"learner": LearnerCfg(), "online": LoopCfg(steps=100)}
    with RunDir.create(out, smaller, resume=True, ignore_on_resume=["online.steps"]) as run:
        with pytest.raises(RunDirError) as err:
            run.restore(_state(0), max_step=100)
    assert str(err.value) == (
        f"cannot resume {out} with a budget of 100 steps: it is already at step 500; "
        "give --steps of at least 500"
    )
    # config.json keeps the run's own budget
    assert json.loads((out / "config.json").read_text())["online"]["steps"] == 1000


def test_the_replay_item_is_read_only_when_asked_for(tmp_path):
    ckpts = Checkpoints(tmp_path)
    state, buffer = _state(2)["train"], _state(2)["buffer"]
    ckpts.save(5, state, {"env_steps": 5}, replay=buffer)
    ckpts.save(6, state, {"env_steps": 6})
    assert ckpts.has_replay(5) and not ckpts.has_replay(6)
    assert_trees_equal(buffer, ckpts.load(5, _state(0)["train"], _state(0)["buffer"]).replay)
    assert ckpts.load(6, _state(0)["train"], _state(0)["buffer"]).replay is None
    shutil.rmtree(ckpts.path(5) / "replay")  # the state restores without ever opening it
    assert_trees_equal(state, ckpts.load(5, _state(0)["train"]).tree)


def test_default_out_dir_names_and_never_reuses(tmp_path):
    first = rundir.default_out_dir("minari:pointmaze/open-v0", 16, 3, root=tmp_path)
    assert first.parent == tmp_path and first.name.startswith("minari_pointmaze_open-v0-d16-s3-")
    first.mkdir()
    second = rundir.default_out_dir("minari:pointmaze/open-v0", 16, 3, root=tmp_path)
    assert second != first and not second.exists()


def test_progress_bar_shows_rate_and_latest_eval(capsys):
    with progress.Progress(total=1000, unit="env steps", disable=False, terminal=True) as bar:
        bar.update(400)
        bar.set_eval(success=0.8512)
        bar.update(1000)
    err = capsys.readouterr().err
    assert "1.00k/1.00k" in err and " env steps/s" in err and "success=0.851" in err


def test_off_a_terminal_progress_prints_one_status_line_per_log_event():
    lines = []
    with progress.Progress(1000, "env steps", terminal=False, echo=lines.append) as bar:
        bar.update(200)  # not a log event: no line
        bar.update(400, {"perf/env_steps_per_s": 12345.6, "train/critic_loss": 5.25})
        bar.set_eval(success=0.5)
        bar.update(1000, {"perf/sgd_steps_per_s": 41.0, "train/actor_loss": -0.5})
    assert lines == [
        "env steps 400/1,000 (40%) | 12,346 env steps/s | critic_loss 5.25",
        "env steps 1,000/1,000 (100%) | 41 SGD steps/s | actor_loss -0.5 | success 0.50",
    ]
    quiet = []
    with progress.Progress(1000, terminal=False, disable=True, echo=quiet.append) as bar:
        bar.update(1000, {"train/critic_loss": 1.0})
    assert quiet == []


LABELS = {"name": "deep-run", "tags": ("baseline", "d64"), "group": "depth-study"}


def test_tensorboard_sink_logs_scalars_and_the_runs_labels(tmp_path):
    pytest.importorskip("tensorboardX")
    tracking = TrackingConfig(tensorboard=True, **LABELS)
    with RunDir.create(tmp_path / "tb", CONFIG, tracking=tracking) as run:
        run.log(1, {"critic_loss": 0.5})
    events = b"".join(p.read_bytes() for p in (tmp_path / "tb" / "tensorboard").iterdir())
    for text in (b"critic_loss", b"name: deep-run", b"group: depth-study", b"tags: baseline, d64"):
        assert text in events, text


def test_wandb_sink_names_tags_and_groups_the_run_and_a_resume_continues_it(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")  # logs under the run dir, no network
    monkeypatch.setenv("WANDB_SILENT", "true")
    tracking = TrackingConfig(wandb=True, wandb_project="crlkit-test", **LABELS)
    path = tmp_path / "wb"
    with RunDir.create(path, CONFIG, tracking=tracking) as run:
        (sink,) = run._sinks
        assert (sink.run.name, tuple(sink.run.tags), sink.run.group) == tuple(LABELS.values())
        assert sink.run.project == "crlkit-test"
        run.log(1, {"critic_loss": 0.5})
        first = sink.run.id
    assert (path / "wandb_id.txt").read_text() == first
    again = TrackingConfig(wandb=True)  # a resume may drop the labels: the name defaults
    with RunDir.create(path, CONFIG, resume=True, tracking=again) as run:
        (sink,) = run._sinks
        assert sink.run.id == first and sink.run.name == "wb"


def test_sinks_not_installed_or_badly_labelled_say_so_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb fails as if not installed
    with pytest.raises(
        RunDirError, match=r"^--wandb needs the wandb package \(pip install wandb\)$"
    ):
        RunDir.create(tmp_path / "no-wb", CONFIG, tracking=TrackingConfig(wandb=True))
    with pytest.raises(ValueError, match=r"--tags 'a,b': a tag cannot contain ','"):
        TrackingConfig(tags=("a,b",))
    with pytest.raises(ValueError, match="at most 64 characters"):
        TrackingConfig(tags=("x" * 65,))
    with pytest.raises(ValueError, match="--name must not be empty"):
        TrackingConfig(name=" ")


# ---------------------------------------------------------------------------------------------
# SIGKILL while writing

_WRITER = """
import sys
import numpy as np
from crlkit.runs.rundir import RunDir

out, start = sys.argv[1], int(sys.argv[2])
config = {"seed": 0}
run = RunDir.create(out, config, resume=start > 0, keep_checkpoints=2)
if start > 0:
    run.restore({"big": np.zeros(4_000_000, np.float32), "step": np.zeros((), np.int64)})
for step in range(start + 1, start + 10_000):
    tree = {"big": np.full(4_000_000, step, np.float32), "step": np.array(step)}
    run.save_checkpoint(tree, step)
    with open(out + "/saved.txt", "a") as f:
        f.write(f"{step}\\n")
"""


_TMP = "orbax-checkpoint-tmp"


def _last_saved(out) -> int:
    path = out / "saved.txt"
    lines = path.read_text().splitlines() if path.exists() else []
    return int(lines[-1]) if lines else 0


def _kill_while_writing(out, start: int, mid_write: bool) -> None:
    """Start a writer, wait until it has saved twice more, SIGKILL it (mid-write if asked)."""
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(out), str(start)])
    try:
        deadline = time.monotonic() + 60
        while _last_saved(out) < start + 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        while mid_write and time.monotonic() < deadline:
            if any(_TMP in p.name for p in (out / "checkpoints").iterdir()):
                break  # a checkpoint is being written right now
        assert time.monotonic() < deadline, "writer made no progress"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_sigkill_never_leaves_a_corrupt_or_lost_checkpoint(tmp_path):
    out = tmp_path / "run"
    template = {"big": np.zeros(4_000_000, np.float32), "step": np.zeros((), np.int64)}
    start = 0
    for mid_write in (True, False, True):
        _kill_while_writing(out, start, mid_write)
        confirmed = _last_saved(out)
        run = RunDir.create(out, {"seed": 0}, resume=True)
        notes = []  # a torn save under a checkpoint name would be reported here
        tree, step, _, _ = run.restore(template, echo=notes.append)
        run.close()  # the next writer needs the run dir's lock
        assert notes == [] and not list((out / "checkpoints").glob("*.corrupt"))
        # Everything confirmed saved survives; the restored tree is exactly its step's content.
        assert step >= confirmed
        assert int(tree["step"]) == step and (tree["big"] == step).all()
        assert not any(_TMP in p.name for p in (out / "checkpoints").iterdir())
        start = step
