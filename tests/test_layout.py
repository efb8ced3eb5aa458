"""Layout rules of docs/design.md: no import cycles (lint-imports checks the layers)."""

from __future__ import annotations

from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]


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
