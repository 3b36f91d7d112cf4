"""Which source files a moelab module depends on, so rules can list them as inputs and an edit to
one stage's code reruns that stage (and its dependents) only."""

from __future__ import annotations

import ast
import re
from functools import lru_cache
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent
# An import statement at the start of a line (any indent: function-local imports count): `from moelab.x import
# a, b` (parenthesised over lines too) or `import moelab.x`. A regular expression, not the AST: every job start
# parses the workflow, which asks for every script's imports, and this is ten times faster than ast.parse;
# tests/test_project.py checks that both find the same imports in every file of the project.
_IMPORT = re.compile(r"^[ \t]*(?:from[ \t]+(moelab[\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[^\n#;]*)"
                     r"|import[ \t]+([^\n#;]*))", re.M)


def _module_path(name: str) -> Path | None:
    parts = name.split(".")[1:]
    if not parts:
        return PACKAGE_ROOT / "__init__.py"
    rel = Path(*parts)
    for cand in (PACKAGE_ROOT / rel.with_suffix(".py"), PACKAGE_ROOT / rel / "__init__.py"):
        if cand.exists():
            return cand
    return None


def module_files(*modules: str) -> list[Path]:
    """The files of ``modules`` (dotted names under moelab) and every moelab module they import,
    transitively, plus the package ``__init__`` files on the way; sorted."""
    seen: set[Path] = set()
    todo = list(modules)
    while todo:
        name = todo.pop()
        path = _module_path(name)
        if path is None:
            raise ValueError(f"no moelab module named {name!r}")
        parts = name.split(".")
        for i in range(1, len(parts)):
            init = _module_path(".".join(parts[:i]))
            if init is not None and init.name == "__init__.py":
                seen.add(init)
        if path in seen:
            continue
        seen.add(path)
        todo.extend(_imports(path))
    return sorted(seen)


def script_modules(script: str | Path) -> list[str]:
    """The moelab modules a file outside the package (a workflow script) imports, anywhere in it."""
    return sorted(set(_imports(Path(script).resolve())))


@lru_cache(maxsize=None)
def _imports(path: Path) -> tuple[str, ...]:
    """The moelab modules one file imports. Cached: every rule asks, and each Slurm job parses the workflow
    twice, so this runs at every job start."""
    found = []
    for m in _IMPORT.finditer(path.read_text()):
        if m[1]:
            found.append(m[1])
            for name in re.split(r"[\s,()\\]+", m[2]):  # "from moelab.synthetic import loads" names a module
                if name and name != "as" and _module_path(f"{m[1]}.{name}") is not None:
                    found.append(f"{m[1]}.{name}")
        else:
            found.extend(a.split(" as ")[0].strip() for a in m[3].split(",")
                         if a.strip().startswith("moelab"))
    return tuple(found)


def _imports_ast(path: Path) -> tuple[str, ...]:
    """The same from the syntax tree: the reference the fast scanner is tested against."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("moelab"):
            found.append(node.module)
            for alias in node.names:  # "from moelab.synthetic import loads" names a module
                if _module_path(f"{node.module}.{alias.name}") is not None:
                    found.append(f"{node.module}.{alias.name}")
        elif isinstance(node, ast.Import):
            found.extend(a.name for a in node.names if a.name.startswith("moelab"))
    return tuple(found)
