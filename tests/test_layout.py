"""The layout rules of docs/design.md: short modules and functions, imports without cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted([*(ROOT / "crlkit").rglob("*.py"), *(ROOT / "cli").rglob("*.py")])
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
MAX_CLI_LINES = 119  # "under 120"


def test_every_module_is_short():
    long = {str(p.relative_to(ROOT)): n for p in SOURCES
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}  # fmt: skip
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"
    cli = {p.name: n for p in (ROOT / "cli").glob("*.py")
           if (n := len(p.read_text().splitlines())) > MAX_CLI_LINES}  # fmt: skip
    assert not cli, f"cli modules over {MAX_CLI_LINES} lines: {cli}"


def test_every_function_is_short():
    long = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines})")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def _cycle(graph) -> list[str] | None:
    """One import cycle among crlkit's modules, or None (iterative DFS, three colours)."""
    modules = sorted(graph.modules)
    colour = dict.fromkeys(modules, 0)
    for start in modules:
        if colour[start]:
            continue
        stack = [(start, iter(sorted(graph.find_modules_directly_imported_by(start))))]
        colour[start], path = 1, [start]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                colour[node] = 2
                stack.pop()
                path.pop()
            elif colour.get(child) == 1:
                return path[path.index(child) :] + [child]
            elif colour.get(child) == 0:
                colour[child] = 1
                path.append(child)
                stack.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
    return None


@pytest.mark.parametrize("package", ["crlkit"])
def test_imports_have_no_cycle(package):
    graph = grimp.build_graph(package)
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)
