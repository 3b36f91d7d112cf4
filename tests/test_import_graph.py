"""The moelab import graph has no cycle, and no module needs a lazy module-level ``__getattr__`` to load.

Every import of a moelab module counts, wherever it is written: at the top of a file, inside a function (a
function-level import that closes a loop is still a loop, only deferred) and under ``if TYPE_CHECKING:`` (a
type-only import is not executed, but it still says the importer depends on the imported module; counting it
keeps the graph acyclic as written, so nobody has to know which edges are real to read it).

How an import statement becomes edges (``importer -> module``):

* ``import moelab.a.b`` and ``from moelab.a.b import name`` (``name`` defined in ``a/b``'s code, or
  ``a/b/__init__.py``) give ``moelab.a.b``;
* ``from moelab.a import b`` gives ``moelab.a`` and, where ``b`` is a submodule, ``moelab.a.b``: read strictly,
  the statement names the package, so a submodule of a package whose ``__init__`` imports it takes its siblings
  as ``import moelab.a.b as b`` (no edge to the package), never ``from moelab.a import b``;
* importing ``moelab.a.b`` also runs the package ``moelab.a`` (its ``__init__``), so it gives ``moelab.a``
  too, except from a module inside ``moelab.a``: Python runs a package's ``__init__`` before any of its
  submodules, so for those it is already loaded (an ``__init__`` importing its own submodules and submodules
  importing their siblings by full name is no loop; ``from moelab.a import name`` of a name defined in
  ``a/__init__.py`` is an edge to it, and a loop when that ``__init__`` imports the importer);
* relative imports are resolved against the importer's package.

``moelab.deps`` scans imports too, for rule inputs (the files a rule reads); this scanner answers another
question, the order of loading, hence its own.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "src"
PACKAGE = ROOT / "moelab"


def _modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the package (a package by its ``__init__.py``)."""
    out = {}
    for p in sorted(PACKAGE.rglob("*.py")):
        parts = p.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _targets(importer: str, module: str, names: list[str] | None) -> set[str]:
    """The moelab modules one import statement runs (see the module docstring), ``importer`` excluded."""
    if module not in MODULES:
        return set()
    if names is None:  # import module
        found = {module}
    else:  # from module import names: the statement names ``module`` itself too (its __init__ for a package)
        found = {module} | {f"{module}.{n}" for n in names if f"{module}.{n}" in MODULES}
    for m in list(found):  # the packages on the way, unless the importer is inside them
        parts = m.split(".")
        for i in range(1, len(parts)):
            pkg = ".".join(parts[:i])
            if not (importer == pkg or importer.startswith(pkg + ".")):
                found.add(pkg)
    return found - {importer}


def _absolute(importer: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".") if _is_package(importer) else importer.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def edges() -> dict[tuple[str, str], int]:
    """(importer, imported) -> the line of the first import statement that makes the edge."""
    out: dict[tuple[str, str], int] = {}
    for importer, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found = set().union(*(_targets(importer, a.name, None) for a in node.names))
            elif isinstance(node, ast.ImportFrom):
                found = _targets(importer, _absolute(importer, node), [a.name for a in node.names])
            else:
                continue
            for m in found:
                out.setdefault((importer, m), node.lineno)
    return out


def cycles(graph: dict[tuple[str, str], int]) -> list[list[str]]:
    """One cycle through each strongly connected component of more than one module (Tarjan), as
    ``[a, b, ..., a]``, shortest from the component's first module in name order."""
    succ: dict[str, list[str]] = {m: [] for m in sorted({m for edge in graph for m in edge})}
    for a, b in sorted(graph):
        succ[a].append(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    comps: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in succ[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for m in succ:
        if m not in index:
            visit(m)
    out = []
    for comp in sorted(comps):
        start, members = comp[0], set(comp)
        prev: dict[str, str] = {}
        todo = [start]
        while todo and start not in prev:  # breadth first, back to start
            nxt = []
            for v in todo:
                for w in succ[v]:
                    if w in members and w not in prev:
                        prev[w] = v
                        nxt.append(w)
            todo = nxt
        path = [start]
        while len(path) == 1 or path[-1] != start:
            path.append(prev[path[-1]])
        out.append(path[::-1])
    return out


def _show(cycle: list[str], graph: dict[tuple[str, str], int]) -> str:
    """``a (line 3) -> b (line 1) -> a``: each module with the line of its import of the next."""
    return " -> ".join(f"{a} (line {graph[a, b]})" for a, b in zip(cycle, cycle[1:])) + f" -> {cycle[-1]}"


def test_the_scanner_sees_the_imports():
    # an import statement's edges
    assert _targets("moelab.config", "moelab.synthetic.scenarios", None) == {"moelab.synthetic.scenarios",
                                                                             "moelab.synthetic"}  # and its package
    assert _targets("moelab.config", "moelab.synthetic", ["scenarios"]) == {"moelab.synthetic.scenarios",
                                                                            "moelab.synthetic"}
    assert _targets("moelab.imports.checks", "moelab.imports", ["layout"]) == {"moelab.imports.layout",
                                                                             "moelab.imports"}  # names the package
    assert _targets("moelab.imports.checks", "moelab.imports.layout", None) == {"moelab.imports.layout"}  # a sibling
    assert _targets("moelab.imports.checks", "moelab.imports", ["ImportSpec"]) == {"moelab.imports"}  # a name
    assert _targets("moelab.imports", "moelab.imports.spec", ["ImportSpec"]) == {"moelab.imports.spec"}
    relative = ast.parse("from .layout import need_file\nfrom . import spec\nfrom .. import hotness").body
    assert [_absolute("moelab.imports.spec", n) for n in relative] == ["moelab.imports.layout", "moelab.imports",
                                                                         "moelab"]
    assert _absolute("moelab.imports", relative[1]) == "moelab.imports"  # a package's own __init__
    # every kind of import in the package: function-level, type-only, an __init__ importing its submodule
    graph = edges()
    assert {("moelab.config", "moelab.imports"), ("moelab.imports.spec", "moelab.imports.checks"),
            ("moelab.imports.trace_formats", "moelab.imports.spec"),
            ("moelab.imports", "moelab.imports.spec")} <= set(graph)
    # a cycle is found and printed from its first module; a module off the loop is left out
    loop = {("b", "c"): 1, ("c", "a"): 2, ("a", "b"): 3, ("c", "d"): 4, ("a", "a.x"): 5}
    assert cycles(loop) == [["a", "b", "c", "a"]]
    assert _show(cycles(loop)[0], loop) == "a (line 3) -> b (line 1) -> c (line 2) -> a"


def test_the_package_has_no_import_cycle():
    graph = edges()
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(_show(c, graph) for c in found)


def _module_level(body: list[ast.stmt]):
    """The statements run at import, into ``if``/``try``/``with`` blocks, not into functions or classes."""
    for node in body:
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for field in ("body", "orelse", "finalbody"):
                yield from _module_level(getattr(node, field, []))
            for handler in getattr(node, "handlers", []):
                yield from _module_level(handler.body)


def test_no_module_has_a_lazy_getattr():
    found = []
    for name, path in MODULES.items():
        for node in _module_level(ast.parse(path.read_text(), str(path)).body):
            defines = (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "__getattr__"
                       or isinstance(node, (ast.Assign, ast.AnnAssign)) and any(
                           isinstance(t, ast.Name) and t.id == "__getattr__"
                           for t in (node.targets if isinstance(node, ast.Assign) else [node.target])))
            if defines:
                found.append(f"{name} (line {node.lineno})")
    assert not found, f"module-level __getattr__ in {found}: import what the module needs, without a cycle"
