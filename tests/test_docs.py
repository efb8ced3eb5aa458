"""Every shell command and Python snippet in README.md and docs/*.md works as shown.

A block is a fenced ```bash or ```python block. The line just before its fence may say why it
is not run here, as an HTML comment (invisible on GitHub):

    <!-- not run: needs a GPU -->            (one of NOT_RUN_REASONS)

Fast suite: every `crlkit ...` line of every bash block parses through the real click commands,
and every Python block compiles. Slow suite (`-m slow`): every block without a reason runs, in a
fresh directory per doc file, in order within its file: `crlkit` lines as subprocesses with the
tiny-budget flags of TINY appended (click keeps the last value of a repeated flag, so they cut the
budget and change nothing else; a bash block holding any other command fails: it needs a reason),
then the file's Python blocks in one process, one namespace, in order. Placeholders stand for a
run the test makes first (PLACEHOLDERS: RUN_DIR is a bare `crlkit online` run, OFFLINE_RUN the
offline sample run); a command identical to one already run (those two included) runs once.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from conftest import xla_env
from crlkit.cli.main import cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NOT_RUN_REASONS = (
    "CI runs it",  # the set-up commands: .ci/run runs them on a fresh machine
    "needs a GPU",
    "needs a dataset download",  # OGBench's or Minari's files, fetched on first use
    "API outline",  # signatures and shapes, not a program
    "minutes of compute",  # benchmarks and real sweeps; their tiny versions run elsewhere
)
# Flags appended to a documented command so it runs in seconds: budgets only (steps, envs, episodes,
# batch and buffer sizes, frame size), never what the command is about (env, depth, width, preset).
TINY = {
    "online": ["--steps", "64", "--num-envs", "4", "--unroll-length", "8", "--batch-size", "16",
               "--updates-per-step", "1", "--prefill-steps", "0", "--replay-steps-per-env", "32",
               "--log-every", "32", "--eval-every", "0", "--checkpoint-every", "0",
               "--eval-episodes", "2", "--eval-episodes-per-task", "0", "--quiet"],
    "offline": ["--steps", "4", "--batch-size", "16", "--log-every", "2", "--eval-every", "4",
                "--eval-episodes", "1", "--quiet"],
    "collect": ["--steps", "2000", "--num-envs", "2", "--quiet"],
    "render": ["--episodes", "1", "--size", "64"],
    "sweep": ["--depths", "4", "--seeds", "1", "--batch-sizes", "16",
              "--online-steps", "64", "--online-num-envs", "4", "--online-unroll-length", "8",
              "--online-updates-per-step", "1", "--online-prefill-steps", "0",
              "--online-replay-steps-per-env", "32", "--online-log-every", "32",
              "--online-eval-every", "0", "--online-eval-episodes", "2",
              "--online-eval-episodes-per-task", "1", "--offline-steps", "4",
              "--offline-log-every", "2", "--offline-eval-every", "4",
              "--offline-eval-episodes", "1", "--quiet"],
}  # fmt: skip
# A resumed run needs a budget above the one it ran first.
RESUME = {"online": ["--steps", "128"], "offline": ["--steps", "8"]}
# Documented stand-ins for a run directory, and the run the test makes first for each.
PLACEHOLDERS = {
    "RUN_DIR": "online",
    "runs/pointmaze-arena-d4-...": "online",
    "OFFLINE_RUN": "offline",
    "runs/pointmaze-medium-...": "offline",
}
FIXTURE_RUNS = {
    "online": ["online"],
    "offline": ["offline", "--dataset", "pointmaze-medium-navigate-sample"],
}
_FENCE = re.compile(
    r"(?:<!-- not run: (?P<reason>[^>]*?) -->\n)?```(?P<lang>bash|python)\n(?P<body>.*?)```", re.S
)


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    lang: str
    body: str
    reason: str | None

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks() -> list[Block]:
    out = []
    for path in DOCS:
        text = path.read_text()
        for m in _FENCE.finditer(text):
            line = text.count("\n", 0, m.start("lang")) + 1
            out.append(Block(path, line, m["lang"], m["body"], m["reason"]))
    return out


def shell_commands(body: str) -> list[str]:
    """The commands of a bash block (continuations joined, comments and blank lines dropped)."""
    commands = []
    for line in body.replace("\\\n", " ").splitlines():
        if line.lstrip().startswith("#"):
            continue
        for part in line.split(" #")[0].split("&&"):
            if part.strip():
                commands.append(part.strip())
    return commands


def crlkit_lines(body: str) -> list[list[str]]:
    """The `crlkit ...` commands of a bash block, as argv lists without the `crlkit`."""
    return [shlex.split(c)[1:] for c in shell_commands(body) if c.startswith("crlkit ")]


def test_every_block_is_runnable_or_says_why_not():
    found = blocks()
    assert len(found) > 10
    bad = [b.name for b in found if b.reason is not None and b.reason not in NOT_RUN_REASONS]
    assert not bad, f"unknown 'not run' reasons at {bad}; valid: {NOT_RUN_REASONS}"


@pytest.mark.parametrize(
    "argv",
    [a for b in blocks() if b.lang == "bash" for a in crlkit_lines(b.body)],
    ids=lambda a: " ".join(a)[:60],
)
def test_documented_crlkit_lines_parse(argv):
    """Each documented command resolves to a real subcommand whose options accept it as is."""
    ctx = cli.make_context("crlkit", list(argv), resilient_parsing=False)
    name = ctx.protected_args[0] if ctx.protected_args else ctx.args[0]
    command = cli.get_command(ctx, name)
    assert command is not None, argv
    rest = (ctx.protected_args + ctx.args)[1:]
    if isinstance(command, click.Group):
        sub = command.get_command(ctx, rest[0])
        assert sub is not None, argv
        command, rest = sub, rest[1:]
    command.make_context(name, list(rest), parent=ctx)  # raises click.UsageError if invalid


@pytest.mark.parametrize("block", [b for b in blocks() if b.lang == "python"], ids=lambda b: b.name)
def test_documented_python_compiles(block):
    compile(block.body, block.name, "exec")


# Slow: every block without a reason runs ---------------------------------------------------------


class DocRunner:
    """Runs documented blocks at tiny budgets: each doc file in a directory of its own, `crlkit`
    lines as subprocesses (each distinct command once), Python blocks of a file in one process."""

    def __init__(self, root: Path):
        self.root = root
        self.runs: dict[str, str] = {}  # placeholder kind -> the run directory the test made
        self.done: dict[tuple[str, ...], str] = {}  # argv -> its output (a command runs once)

    def workdir(self, path: Path) -> Path:
        cwd = self.root / path.relative_to(ROOT).as_posix().replace("/", "-")
        cwd.mkdir(exist_ok=True)
        return cwd

    def argv(self, argv: list[str]) -> list[str]:
        argv = [self.runs[PLACEHOLDERS[a]] if a in PLACEHOLDERS else a for a in argv]
        tiny = TINY.get(argv[0], [])
        resumed = RESUME.get(argv[0], []) if "--resume" in argv else []
        return [*argv, *tiny, *resumed]

    def crlkit(self, argv: list[str], cwd: Path, where: str) -> str:
        full = self.argv(argv)
        if tuple(full) in self.done and "--out" not in full:
            return self.done[tuple(full)]
        cmd = [sys.executable, "-c", "from crlkit.cli.main import cli; cli()", *full]
        result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=_env())
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"{where}: crlkit {shlex.join(full)} -> {output[-3000:]}"
        self.done[tuple(full)] = output
        return output

    def python(self, found: list[Block], cwd: Path) -> str:
        """The file's Python blocks, in order, in one namespace (each compiled under its name)."""
        program = "ns = {}\n" + "".join(
            f"exec(compile({_substitute(b.body, self.runs)!r}, {b.name!r}, 'exec'), ns)\n"
            for b in found
        )
        result = subprocess.run(
            [sys.executable, "-c", program], cwd=cwd, capture_output=True, text=True, env=_env()
        )
        output = result.stdout + result.stderr
        names = ", ".join(b.name for b in found)
        assert result.returncode == 0, f"{names} -> {output[-3000:]}"
        return output


def _env() -> dict[str, str]:
    """This interpreter's scripts first on PATH (so `crlkit` in a block is this checkout's); the
    blocks run at tiny budgets, so they compile as the fast suite does (`xla_env`)."""
    env = xla_env(compile_bound=True)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _substitute(text: str, runs: dict[str, str]) -> str:
    for placeholder, kind in PLACEHOLDERS.items():
        text = text.replace(placeholder, runs[kind])
    return text


@pytest.fixture(scope="module")
def runner(tmp_path_factory) -> DocRunner:
    """The runs that placeholders stand for: a bare `crlkit online` and the offline sample run."""
    runner = DocRunner(tmp_path_factory.mktemp("docs"))
    base = runner.root / "fixture-runs"
    base.mkdir()
    for kind, argv in FIXTURE_RUNS.items():
        out = str(base / kind)
        runner.crlkit([*argv, "--out", out], base, f"the {kind} run placeholders stand for")
        runner.done[tuple(runner.argv(argv))] = ""  # the same command without --out: ran here
        runner.runs[kind] = out
    return runner


@pytest.mark.slow
@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_documented_blocks_run(path, runner):
    """Every block of the file without a 'not run' reason works as shown, at a tiny budget."""
    found = [b for b in blocks() if b.path == path and b.reason is None]
    if not found:
        pytest.skip(f"{path.name}: every block says why it is not run")
    cwd = runner.workdir(path)
    start = time.monotonic()
    failures = []  # every failing command of the file is reported, not only the first
    for block in (b for b in found if b.lang == "bash"):
        commands = shell_commands(block.body)
        others = [c for c in commands if not c.startswith("crlkit ")]
        assert not others, f"{block.name}: only crlkit lines run here; give a reason for {others}"
        for argv in crlkit_lines(block.body):
            try:
                runner.crlkit(argv, cwd, block.name)
            except AssertionError as error:
                failures.append(str(error).split("\nassert")[0])
    python = [b for b in found if b.lang == "python"]
    if python:
        try:
            output = runner.python(python, cwd)
            if path.name == "README.md":
                assert "success" in output, output  # the API example prints its evaluation
        except AssertionError as error:
            failures.append(str(error).split("\nassert")[0])
    print(f"{path.name}: {len(found)} blocks in {time.monotonic() - start:.0f} s")
    assert not failures, "\n".join(failures)
