"""The shape of the package: no import circles, small modules, consumers on the public API only.

Read with ``ast`` (nothing is imported), so a failure names the files to change:

- the import graph of every module under ``xling_probe/`` and ``widgets/`` (installed as
  ``xling_probe.widgets``) counts every import, function-local ones included, except those under
  ``if TYPE_CHECKING:`` (they never run); ``from pkg import name`` where ``name`` is a submodule
  counts as an import of that submodule. Importing ``a.b.c`` is an edge to ``a.b.c`` only (the
  parent packages' ``__init__`` re-exports are not followed), as tools such as import-linter do;
- no module over :data:`MAX_LINES` lines;
- ``plots/``, ``report/``, ``cli/`` and ``widgets/`` import no underscore-prefixed name from another
  part of the library and read no ``module._name`` of a library module they imported; nor does any
  other stage (the lens uses the extraction runners' public names).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"xling_probe": ROOT / "xling_probe", "xling_probe.widgets": ROOT / "widgets"}
MAX_LINES = 400
CONSUMERS = ("xling_probe.plots", "xling_probe.report", "xling_probe.cli", "xling_probe.widgets")


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` of the package and the widgets."""
    out: dict[str, Path] = {}
    for pkg, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(folder).with_suffix("")
            if any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
                continue
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join([pkg, *parts])
            if pkg == "xling_probe" and parts[:1] == ["widgets"]:
                continue  # not expected, but never count a module twice
            out[name] = path
    return out


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES.get(name, Path()).name == "__init__.py"


def _base(module: str, level: int) -> str:
    """The package a relative import of ``level`` dots starts from, inside ``module``."""
    parts = module.split(".")
    if not _is_package(module):
        parts = parts[:-1]
    if level > 1:
        parts = parts[: len(parts) - (level - 1)]
    return ".".join(parts)


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes under ``if TYPE_CHECKING:`` (imports there never run)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else None
            if name == "TYPE_CHECKING":
                for child in node.body:
                    skip.update(id(n) for n in ast.walk(child))
    return skip


def _imports(module: str, path: Path) -> list[tuple[str, int, ast.AST, list[str]]]:
    """``(imported module, line, node, names taken from it)`` for every import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    skip = _type_checking_nodes(tree)
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                out.append((alias.name, node.lineno, node, []))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _base(module, node.level)
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            names = [a.name for a in node.names]
            out.append((target, node.lineno, node, names))
    return out


def _graph() -> dict[str, dict[str, int]]:
    """module -> {imported library module: first line}, library modules only."""
    graph: dict[str, dict[str, int]] = {}
    for module, path in MODULES.items():
        edges: dict[str, int] = {}
        for target, line, _node, names in _imports(module, path):
            if target.startswith("widgets"):  # the widgets import themselves as widgets.* in places
                target = "xling_probe." + target
            hits = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            if target in MODULES and len(hits) < len(names):
                hits.append(target)  # names that are not submodules come from the module itself
            elif target in MODULES and not names:
                hits.append(target)
            for hit in hits:
                if hit != module:
                    edges.setdefault(hit, line)
        graph[module] = edges
    return graph


def _find_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each with one cycle through it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                strong(w)
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
                components.append(sorted(comp))

    import sys

    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 10 * len(graph) + 100))
    try:
        for v in sorted(graph):
            if v not in index:
                strong(v)
    finally:
        sys.setrecursionlimit(old)
    return [_one_cycle(graph, comp) for comp in components]


def _one_cycle(graph: dict[str, dict[str, int]], comp: list[str]) -> list[str]:
    """A shortest cycle through the first module of a strongly connected component (breadth-first)."""
    members = set(comp)
    start = comp[0]
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in graph[v]:
                if w not in members:
                    continue
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return [start, *reversed(path[:-1]), start] if len(path) > 1 else [start, v, start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return comp


def _describe(graph: dict[str, dict[str, int]], cycle: list[str]) -> str:
    hops = [f"{a} (line {graph[a][b]}) -> {b}" for a, b in zip(cycle, cycle[1:])]
    return " ; ".join(hops)


def test_the_graph_sees_the_imports_it_should():
    graph = _graph()
    assert len(MODULES) > 40 and "xling_probe.widgets.workbench" in MODULES
    assert "xling_probe.extraction.extract" in graph["xling_probe"]  # `from .extraction.extract import extract`
    assert "xling_probe.models.loading" in graph["xling_probe.extraction.extract"]


def test_no_import_cycle():
    graph = _graph()
    cycles = _find_cycles(graph)
    lines = [_describe(graph, c) for c in cycles]
    assert not cycles, f"{len(cycles)} import cycle(s) (module (line of the import) -> module):\n" + "\n".join(lines)


def test_models_never_import_extraction():
    graph = _graph()
    bad = [f"{m} (line {line}) imports {t}" for m, edges in graph.items() if m.startswith("xling_probe.models")
           for t, line in edges.items() if t.startswith("xling_probe.extraction")]
    assert not bad, "models/ must not import extraction/:\n" + "\n".join(bad)


def test_no_module_is_over_the_size_limit():
    long = {str(p.relative_to(ROOT)): n for p in MODULES.values() if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: " + ", ".join(f"{k} ({v})" for k, v in sorted(long.items()))


def _owner(module: str) -> str:
    """The part of the library a module belongs to: ``xling_probe.plots``, ``xling_probe.labels``..."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def _private_uses(prefixes: tuple[str, ...]) -> list[str]:
    """Underscore names that modules under ``prefixes`` take from another part of the library."""
    problems = []
    for module, path in MODULES.items():
        if not module.startswith(prefixes):
            continue
        rel = path.relative_to(ROOT)
        here = _owner(module)
        library_aliases: dict[str, str] = {}  # local name -> library module, for attribute checks
        for target, line, node, names in _imports(module, path):
            if target.startswith("widgets"):
                target = "xling_probe." + target
            if not target.startswith("xling_probe"):
                continue
            for alias in getattr(node, "names", []):
                full = f"{target}.{alias.name}" if isinstance(node, ast.ImportFrom) else alias.name
                if full in MODULES or (isinstance(node, ast.Import) and alias.name.startswith("xling_probe")):
                    library_aliases[alias.asname or alias.name.split(".")[0]] = full
            if isinstance(node, ast.ImportFrom) and (_owner(target) != here or target == "xling_probe"):
                private = [n for n in names if n.startswith("_") and not (n.startswith("__") and n.endswith("__"))]
                if private:
                    problems.append(f"{rel}:{line} imports private {', '.join(private)} from {target}")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and isinstance(node.value, ast.Name) and node.value.id in library_aliases):
                target = library_aliases[node.value.id]
                if _owner(target) != here:
                    problems.append(f"{rel}:{node.lineno} reads private {node.value.id}.{node.attr} of {target}")
    return problems


def test_consumers_use_only_public_names():
    problems = _private_uses(CONSUMERS)
    assert not problems, "plots/, report/, cli/ and widgets/ must use the public API only:\n" + "\n".join(problems)


def test_no_stage_reaches_into_another_stage():
    """The lens runs the extraction runners through their public names, and so on for every stage."""
    problems = _private_uses(("xling_probe",))
    assert not problems, "a module uses another subpackage's private names:\n" + "\n".join(problems)
