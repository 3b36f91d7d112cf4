"""docs/layout.md matches the tree: every path it names exists; every top-level folder and file, and every rule
file, is named; every package module has a row and every config spec its block; docs/index.md links every page.

Paths are read from the Repository block (the first name on each line) and from backticked tokens anywhere on
the page. Each check returns what is wrong, so a failure lists everything missing at once."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PKG = ROOT / "src/moelab"
LAYOUT = DOCS / "layout.md"
# named on the page as outputs, never part of the repository
OUTPUTS = ("results/", "logs/", ".venv/")

_TOKEN = re.compile(r"`([^`\s]+)`")  # a backticked token without spaces
_PATHLIKE = re.compile(r"[\w.\-/<>*]+")
_EXT = re.compile(r"\.(py|smk|md|yaml|yml|toml|lock|rst)$")  # the repository's own kinds of file
_PLACEHOLDER = re.compile(r"[<*{]")  # recorded/<device>/, workflow/rules/<stage>.smk
_LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")


def repo_files() -> list[str]:
    """Every file git sees: tracked, or new and not ignored."""
    try:
        out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [f for f in out.splitlines() if (ROOT / f).exists()]


def sections(text: str) -> dict[str, str]:
    """'## heading' -> its text, subsections included."""
    return {p.split("\n", 1)[0].strip(): p for p in re.split(r"^## ", text, flags=re.M)[1:]}


def tree_entries(text: str) -> list[str]:
    """The names the Repository block lists, children under their folder: 'config/', 'workflow/rules/'."""
    block = re.search(r"```\n(.*?)```", sections(text)["Repository"], re.S).group(1)
    out, parent = [], ""
    for line in block.splitlines():
        m = re.match(r"( {0,2})([^\s,]+(?:, [^\s,]+)*)", line)  # deeper lines continue a description
        if not m:
            continue
        indent, names = m.groups()
        for name in names.split(", "):
            if indent:
                out.append(parent + name)
            else:
                parent = name if name.endswith("/") else ""
                out.append(name)
    return out


def named_paths(text: str) -> list[str]:
    """Every repository path the page names: tree entries and path-like backticked tokens."""
    tokens = [t for t in _TOKEN.findall(text) if _PATHLIKE.fullmatch(t) and ("/" in t or _EXT.search(t))]
    return [p for p in dict.fromkeys(tree_entries(text) + tokens) if not p.startswith(OUTPUTS)]


def exists(path: str, basenames: set[str]) -> bool:
    """Relative to the repository or to src/moelab; a bare file name anywhere in the repository; a pattern by
    the fixed folder before its first placeholder."""
    if m := _PLACEHOLDER.search(path):
        path = path[:m.start()].rpartition("/")[0] + "/"
    return (ROOT / path).exists() or (PKG / path).exists() or ("/" not in path and path in basenames)


def missing_paths(text: str, files: list[str]) -> list[str]:
    basenames = {Path(f).name for f in files}
    bad = [f"no such path: {p}" for p in named_paths(text) if not exists(p, basenames)]
    return bad + [f"no such page: {t}" for t in _LINK.findall(text) if "://" not in t and not (DOCS / t).exists()]


def unnamed(text: str, files: list[str]) -> list[str]:
    """Top-level folders and files, and workflow/rules/ files, the page does not name."""
    entries = tree_entries(text)
    tops = {f.split("/")[0] + ("/" if "/" in f else "") for f in files}
    bad = [f"not named: {t}" for t in sorted(tops) if not any(e == t or e.split("/")[0] + "/" == t for e in entries)]
    rules = sorted(p.name for p in (ROOT / "workflow/rules").iterdir() if p.is_file())
    return bad + [f"not named: workflow/rules/{r}" for r in rules
                  if not re.search(rf"(?<![\w.\-]){re.escape(r)}", text)]


def module_rows(text: str) -> set[str]:
    """The modules the package tables list: backticked .py names in a row's first cell, from src/moelab/."""
    package = next(body for head, body in sections(text).items() if head.startswith("The package"))
    rows = [line.split("|")[1] for line in package.splitlines() if line.startswith("| `")]
    return {t for cell in rows for t in _TOKEN.findall(cell) if t.endswith(".py")}


def module_problems(text: str) -> list[str]:
    have = {p.relative_to(PKG).as_posix() for p in PKG.rglob("*.py") if p.name != "__init__.py"}
    listed = module_rows(text)
    return ([f"no row: {m}" for m in sorted(have - listed)]
            + [f"row for a module that does not exist: {m}" for m in sorted(listed - have)])


def spec_problems(text: str) -> list[str]:
    """The Config block -> spec table: each block is a schema key, each spec a class of the row's modules, and
    every ConfigSpec of the package has a row."""
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    table = next(body for head, body in sections(text).items() if head.startswith("Config block"))
    rows = [[c.strip() for c in line.split("|")[1:4]] for line in table.splitlines() if line.startswith("| `")]
    bad, specs = [], set()
    for blocks, spec, modules in rows:
        for key in _TOKEN.findall(blocks):
            node = schema
            for part in key.split("."):
                node = (node.get("properties") or {}).get(part) if isinstance(node, dict) else None
            if node is None:
                bad.append(f"config block {key}: not in the schema")
        code = "\n".join((PKG / m).read_text() for m in _TOKEN.findall(modules) if (PKG / m).is_file())
        for name in _TOKEN.findall(spec):
            if re.fullmatch(r"[A-Z]\w+", name):
                specs.add(name)
                if not re.search(rf"^class {name}\b", code, re.M):
                    bad.append(f"spec {name}: no such class in {modules}")
    declared = {m.group(1) for p in PKG.rglob("*.py")
                for m in re.finditer(r"^class (\w+)\(ConfigSpec\)", p.read_text(), re.M)}
    bad += [f"spec {name}: no row" for name in sorted(declared - specs)]
    return bad


def index_problems(text: str) -> list[str]:
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")} - {"index.md"}
    return [f"not linked: {p}" for p in sorted(pages - set(_LINK.findall(text)))]


def _report(problems: list[str]) -> str:
    return "docs/layout.md and the tree disagree:\n  " + "\n  ".join(problems)


def test_every_path_the_layout_names_exists():
    assert not (bad := missing_paths(LAYOUT.read_text(), repo_files())), _report(bad)


def test_the_layout_names_every_top_level_entry_and_rule_file():
    assert not (bad := unnamed(LAYOUT.read_text(), repo_files())), _report(bad)


def test_the_module_tables_list_exactly_the_package_modules():
    assert not (bad := module_problems(LAYOUT.read_text())), _report(bad)


def test_the_config_table_matches_the_schema_and_the_specs():
    assert not (bad := spec_problems(LAYOUT.read_text())), _report(bad)


def test_the_index_links_every_doc_page():
    text = (DOCS / "index.md").read_text()
    bad = index_problems(text) + [f"no such page: {t}" for t in _LINK.findall(text)
                                  if "://" not in t and not (DOCS / t).exists()]
    assert not bad, "docs/index.md:\n  " + "\n  ".join(bad)


def test_the_checks_catch_a_stale_layout():
    """Each check on a broken copy of the page names what broke."""
    files = repo_files()
    text = LAYOUT.read_text()
    broken = (text.replace("| `hotness_error.py` |", "| `hotness_gone.py` |")
              .replace("examples/imports/ ", "examplez/ ")
              .replace("summary.smk", "summary")
              .replace("`placement.eplb`, `placement.policy`", "`placement.eplb_old`, `placement.policy`")
              .replace("`EplbSpec`, `PolicySpec`", "`OldSpec`, `PolicySpec`")
              + "\nSee `tools/nowhere` and [gone](stages/gone.md).\n")
    assert broken.count("hotness_gone.py") == 1 and "examplez/" in broken, "the rows this test breaks have moved"
    assert {"no such path: hotness_gone.py", "no such path: examplez/", "no such path: tools/nowhere",
            "no such page: stages/gone.md"} <= set(missing_paths(broken, files))
    assert {"not named: examples/", "not named: workflow/rules/summary.smk"} <= set(unnamed(broken, files))
    assert {"no row: hotness_error.py", "row for a module that does not exist: hotness_gone.py"} <= set(
        module_problems(broken))
    got = spec_problems(broken)
    assert "config block placement.eplb_old: not in the schema" in got
    assert "spec EplbSpec: no row" in got and any(p.startswith("spec OldSpec: no such class") for p in got)
    index = (DOCS / "index.md").read_text().replace("(stages/routing.md)", "(stages/routing.txt)")
    assert index_problems(index) == ["not linked: stages/routing.md"]
