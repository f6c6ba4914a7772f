"""No module uses another module's private names: `from collector.x import _y`, or `x._y` on an imported collector
module (the layers themselves are import-linter's contract in pyproject.toml, run by `make lint`)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "collector"


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_uses(path: Path) -> list[str]:
    """`file:line: name` for every private name of another collector module this file uses."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    modules: set[str] = set()  # local names bound to collector modules
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("collector"):
            for alias in node.names:
                if _private(alias.name):
                    found.append((node.lineno, f"{node.module}.{alias.name}"))
                elif (PACKAGE.parent / (node.module.replace(".", "/") + f"/{alias.name}.py")).is_file():
                    modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("collector"):
                    modules.add(alias.asname or alias.name.split(".")[0])
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id in modules:
                found.append((node.lineno, ast.unparse(node)))
    return [f"{path.name}:{line}: {what}" for line, what in sorted(found)]


def test_no_module_uses_another_modules_private_names() -> None:
    assert [use for p in sorted(PACKAGE.rglob("*.py")) for use in private_uses(p)] == []


def test_the_check_sees_both_forms(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text("from collector.measure.runner import _detail\nfrom collector.host import hardware\n"
                   "hardware._read('x')\nimport collector.records.store as s\ns._GPU_NOISE\nself_obj = object()\n"
                   "self_obj._fine = 1\n")
    assert private_uses(src) == ["m.py:1: collector.measure.runner._detail", "m.py:3: hardware._read",
                                 "m.py:5: s._GPU_NOISE"]


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of a module graph: its strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_anywhere_type_only_imports_included() -> None:
    import grimp  # import-linter's graph builder (the dev extra)

    graph = grimp.build_graph("collector", include_external_packages=False, exclude_type_checking_imports=False)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    # a package imports its own submodules to re-export them: that edge is its face, not a cycle
    edges = {m: {d for d in deps if not (d.startswith(m + ".") or m.startswith(d + "."))} for m, deps in edges.items()}
    assert cycles(edges) == []


def test_the_cycle_finder_finds_a_type_only_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert cycles({"a": {"b"}, "b": {"c"}}) == []
