"""The package's layout: every module of `sysnotify` imports only modules that do not import
it back, directly or through others, so each part can be read (and replaced) on its own.

The graph is read from the source: every import of a `sysnotify` module, at module level or
inside a function, except those only for type checkers (`if TYPE_CHECKING:`).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.support.paths import REPO_ROOT

# Where each part of the package lives in the repository (pyproject.toml maps them).
PACKAGE_DIRS = {
    "sysnotify": REPO_ROOT / "sysnotify",
    "sysnotify.exporter": REPO_ROOT / "exporter",
    "sysnotify.mailer": REPO_ROOT / "mailer",
}


def modules() -> dict[str, Path]:
    found = {}
    for package, directory in PACKAGE_DIRS.items():
        for path in directory.rglob("*.py"):
            parts = path.relative_to(directory).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported(tree: ast.AST, known: dict[str, Path]) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _type_checking_only(node):
            node.body = []  # ast.walk has not descended yet: drop what it would find
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if submodule in known:
                    yield submodule
                elif node.module in known:
                    yield node.module


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {
        name: set(imported(ast.parse(path.read_text()), known)) - {name}
        for name, path in known.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected part of the graph that has one."""
    found, done = [], set()
    for start in sorted(graph):
        stack, path = [(start, iter(sorted(graph[start])))], [start]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                done.add(node)
            elif child in path:
                cycle = path[path.index(child) :] + [child]
                if not any(set(cycle) <= set(other) for other in found):
                    found.append(cycle)
            elif child not in done:
                stack.append((child, iter(sorted(graph[child]))))
                path.append(child)
    return found


def test_the_graph_reads_the_package() -> None:
    graph = import_graph()
    assert "sysnotify.mailer.intake.transaction" in graph["sysnotify.mailer.web.webhook"] or (
        "sysnotify.mailer.intake.payload" in graph["sysnotify.mailer.web.webhook"]
    )
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c", "a"]]


def test_no_module_imports_itself_back() -> None:
    assert cycles(import_graph()) == []
