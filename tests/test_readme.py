"""The README's set-up commands are the ones CI runs, and every `crlkit ...` line in its shell
blocks parses, as written, through the real click commands. tests/test_docs.py runs the README's
blocks (its Python API example included) at a tiny budget; the learning tests run the bare
`crlkit online` and the offline sample command end to end."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
from crlkit.cli.main import cli

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


def _crlkit_commands() -> list[list[str]]:
    commands = []
    for block in _blocks("bash"):
        for line in block.splitlines():
            for part in line.split("&&"):
                part = part.split("#")[0].strip()
                if part.startswith("crlkit"):
                    commands.append(shlex.split(part)[1:])
    return commands


def test_readme_has_the_two_setup_commands():
    text = README.read_text()
    assert "pip install -e . && crlkit online" in text
    checks = 'ruff check . && ruff format --check . && lint-imports && pytest -q -n 2 -m "not slow"'
    assert f'pip install -e ".[test]" && {checks}' in text
    ci = (README.parent / ".ci" / "run").read_text()
    assert f'pip install -q -e ".[test]" && {checks}' in ci and "\npytest -q -n 2 -m slow" in ci


@pytest.mark.parametrize("argv", _crlkit_commands(), ids=lambda a: " ".join(a)[:60])
def test_readme_cli_lines_parse(argv):
    """Each README command resolves to a real subcommand whose options accept the line as is."""
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
