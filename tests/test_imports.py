"""ternkit's static import graph has no cycles: function-local imports count (they are how cycles hide).

Read from the source with `ast`, not by importing: every `import` / `from ... import` anywhere in a module of
ternkit/, core/, trainer/, export/ and targets/ (the folders the wheel maps to ternkit, ternkit.core, ...) is an
edge to the ternkit module it names. Imports under `if TYPE_CHECKING:` never run and are left out. A failure
names each cycle it finds as a path of modules and the line of each import.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"ternkit": "ternkit", "core": "ternkit.core", "trainer": "ternkit.trainer", "export": "ternkit.export",
            "targets": "ternkit.targets"}
Edge = tuple[str, str, str]  # (importer, imported, "file:line")


def modules() -> dict[str, Path]:
    """Module name -> file, for every .py file of the five folders (a package is its __init__.py)."""
    found: dict[str, Path] = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the import nodes inside `if TYPE_CHECKING:` blocks."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skip


def edges(mods: dict[str, Path]) -> list[Edge]:
    out: list[Edge] = []
    for name, path in mods.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        skip = _type_checking_nodes(tree)
        where = str(path.relative_to(ROOT))
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                # `from P import x` imports the module P.x when there is one, else a name of P
                targets = [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in mods else prefix for a in node.names]
            for target in targets:
                while target and target not in mods:  # `import a.b.c` of a non-module name: its module
                    target = target.rpartition(".")[0]
                if target and target != name:
                    out.append((name, target, f"{where}:{node.lineno}"))
    return out


def cycles(graph: list[Edge]) -> list[list[Edge]]:
    """One cycle (as its edges) per strongly connected component of more than one module (Tarjan)."""
    succ: dict[str, list[Edge]] = {}
    for e in graph:
        succ.setdefault(e[0], []).append(e)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    comps: list[set[str]] = []

    def visit(v: str) -> None:  # iterative enough for ~300 modules: recursion depth is the longest chain
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for _, w, _ in succ.get(v, []):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(comp)

    for v in sorted(succ):
        if v not in index:
            visit(v)
    found = []
    for comp in comps:  # a shortest cycle through the component's first module (breadth-first)
        start = min(comp)
        paths: dict[str, list[Edge]] = {start: []}
        queue = [start]
        cycle: list[Edge] | None = None
        while queue and cycle is None:
            v = queue.pop(0)
            for e in succ.get(v, []):
                if e[1] == start:
                    cycle = paths[v] + [e]
                    break
                if e[1] in comp and e[1] not in paths:
                    paths[e[1]] = paths[v] + [e]
                    queue.append(e[1])
        found.append(cycle or [])
    return found


def describe(cycle: list[Edge]) -> str:
    return " -> ".join(f"{a} ({where})" for a, _, where in cycle) + f" -> {cycle[0][0]}"


def test_the_graph_is_read():
    """The reader sees what it must: known edges, function-local ones included, and the technique modules."""
    mods = modules()
    graph = {(a, b) for a, b, _ in edges(mods)}
    assert {"ternkit.trainer.api", "ternkit.core.ops", "ternkit.export", "ternkit.cli"} <= set(mods)
    assert ("ternkit.trainer.api", "ternkit.trainer.widen") in graph
    assert ("ternkit.trainer", "ternkit.trainer.halo") in graph  # the package imports its techniques
    assert ("ternkit.trainer.run", "ternkit.trainer.trace") in graph  # a function-local import


def test_cycle_finder_reports_a_cycle():
    graph = [("a", "b", "a.py:1"), ("b", "c", "b.py:2"), ("c", "a", "c.py:3"), ("c", "d", "c.py:4")]
    (cycle,) = cycles(graph)
    assert describe(cycle) == "a (a.py:1) -> b (b.py:2) -> c (c.py:3) -> a"


def test_no_import_cycles():
    found = cycles(edges(modules()))
    assert not found, "import cycles:\n" + "\n".join(describe(c) for c in found)


def test_trainer_imports_run_one_way():
    """The plain run never reaches the stages above it, and the technique registry imports no technique."""
    mods = modules()
    succ: dict[str, set[str]] = {}
    for a, b, _ in edges(mods):
        succ.setdefault(a, set()).add(b)

    def reach(v: str) -> set[str]:
        seen, todo = set(), [v]
        while todo:
            for w in succ.get(todo.pop(), ()):
                if w not in seen:
                    seen.add(w)
                    todo.append(w)
        return seen

    assert not {"ternkit.trainer.api", "ternkit.trainer.widen"} & reach("ternkit.trainer.run")
    techniques = {f"ternkit.trainer.{t}" for t in ("approx", "distributed", "dropout", "halo", "prune", "widen")}
    assert not techniques & reach("ternkit.trainer.technique")
