"""The package's shape, checked from its source: no import circle, no function past 60 lines."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import rgw

PACKAGE = Path(rgw.__file__).parent
#: The longest a function in rgw/ (outside rgw/testing) may be, from ``def`` to its last line.
MAX_FUNCTION_LINES = 60


def modules() -> dict[str, Path]:
    """Every module of rgw, by dotted name."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(tree: ast.Module, *, deferred: bool) -> Iterator[str]:
    """The names a module imports at module level (including under ``if TYPE_CHECKING:``, which a
    type checker follows); with ``deferred``, also the imports inside its functions and classes."""
    statements: list[ast.stmt] = list(tree.body)
    while statements:
        statement = statements.pop()
        if isinstance(statement, ast.Import):
            yield from (alias.name for alias in statement.names)
        elif isinstance(statement, ast.ImportFrom) and statement.module and statement.level == 0:
            yield statement.module
            yield from (f"{statement.module}.{alias.name}" for alias in statement.names)
        elif isinstance(statement, ast.If | ast.For | ast.AsyncFor | ast.While):
            statements += [*statement.body, *statement.orelse]
        elif isinstance(statement, ast.With | ast.AsyncWith):
            statements += statement.body
        elif isinstance(statement, ast.Try):
            statements += [*statement.body, *statement.orelse, *statement.finalbody]
            statements += [s for handler in statement.handlers for s in handler.body]
        elif deferred and isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            statements += statement.body


def import_graph(*, deferred: bool) -> dict[str, set[str]]:
    known = modules()
    graph = {}
    for name, path in known.items():
        found = set(imports(ast.parse(path.read_text()), deferred=deferred))
        graph[name] = {imported for imported in found if imported in known} - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle (``a -> b -> a``), or None."""
    state: dict[str, str] = {}  # "open" while on the path, "done" once every import is explored
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = "open"
        path.append(name)
        for imported in sorted(graph[name]):
            if state.get(imported) == "open":
                return [*path[path.index(imported) :], imported]
            if imported not in state and (cycle := visit(imported)) is not None:
                return cycle
        path.pop()
        state[name] = "done"
        return None

    for name in sorted(graph):
        if name not in state and (cycle := visit(name)) is not None:
            return cycle
    return None


def test_no_import_circle() -> None:
    cycle = find_cycle(import_graph(deferred=False))
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_no_import_circle_through_deferred_imports_either() -> None:
    """Stricter than the rule above: a module imported late (for start-up time) closes no circle
    either (before issue 19, rgw.cli.app -> rgw.cli.mfa -> rgw.cli.app did)."""
    cycle = find_cycle(import_graph(deferred=True))
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_the_circle_finder_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def long_functions() -> Iterator[tuple[str, int]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).as_posix()
        if relative.startswith("rgw/testing/"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    yield f"{relative}:{node.name}", lines


def test_no_function_longer_than_60_lines() -> None:
    found = dict(long_functions())
    too_long = {name: lines for name, lines in found.items()}
    assert too_long == {}, f"split these into named steps: {too_long}"
