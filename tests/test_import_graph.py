"""The modules of ``mfg_rl.solvers`` import each other without a cycle.

Every import counts, at module level or inside a function: a cycle held together by a
bottom-of-file or a deferred import is still a cycle (each module then needs the other
half-built). The graph is read from the source with ``ast``, nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "mfg_rl.solvers"
ROOT = Path(__file__).resolve().parents[1] / "mfg_rl" / "solvers"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join((PACKAGE, *parts))


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def imported(node: ast.Import | ast.ImportFrom, here: str, is_package: bool) -> list[str]:
    """Absolute names a node imports (``from a import b`` gives ``a`` and ``a.b``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        anchor = here.split(".") if is_package else here.split(".")[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join(anchor + ([base] if base else []))
    return [base] + [f"{base}.{alias.name}" for alias in node.names]


def import_graph() -> dict[str, set[str]]:
    """``module -> the mfg_rl.solvers modules it imports``, over every import statement."""
    known = modules()
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in imported(node, name, path.name == "__init__.py"):
                    if target in known and target != name:
                        edges.add(target)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as ``[a, b, ..., a]``, or None (depth-first search, three colours)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for child in sorted(graph.get(node, ())):
            if state.get(child) == 1:
                return path[path.index(child):] + [child]
            if child not in state:
                found = visit(child)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def test_the_graph_is_read():
    graph = import_graph()
    assert {f"{PACKAGE}.options", f"{PACKAGE}.coupling"} <= graph[f"{PACKAGE}.solve"]
    assert {f"{PACKAGE}.registry", f"{PACKAGE}.coupling"} <= graph[f"{PACKAGE}.options"]
    assert f"{PACKAGE}.newton" in graph[f"{PACKAGE}.registry"]


def test_find_cycle_reports_the_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle_in_solvers():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle in mfg_rl.solvers: " + " -> ".join(cycle)
