import json

import polars as pl
import pytest

from moelab import corpus


def test_builtin_corpus_has_every_domain_labelled_and_is_deterministic():
    a = corpus.build(("prose", "dialogue", "code", "technical", "legal", "multilingual"), max_chars=20_000,
                     doc_chars=2000, heldout=0.2, seed=3)
    b = corpus.build(("prose", "dialogue", "code", "technical", "legal", "multilingual"), max_chars=20_000,
                     doc_chars=2000, heldout=0.2, seed=3)
    assert a.equals(b)
    s = corpus.summary(a)
    assert set(s["domain"].cast(pl.String)) == {"prose", "dialogue", "code", "technical", "legal", "multilingual"}
    per_domain = a.group_by("domain").agg(chars=pl.col("text").str.len_chars().sum(), n=pl.len())
    # capped: a domain stops once it reaches max_chars (the last document may overshoot by < doc_chars)
    assert per_domain["chars"].max() < 20_000 + 2000
    assert (a["text"].str.len_chars() <= 2000).all()
    assert 0.1 < (a["part"] == "heldout").mean() < 0.3
    assert a["doc"].to_list() == list(range(a.height))
    c = corpus.build(("prose", "code"), max_chars=20_000, doc_chars=2000, heldout=0.2, seed=4)
    assert not c.filter(pl.col("domain") == "prose")["text"].equals(a.filter(pl.col("domain") == "prose")["text"])


def test_math_domain_comes_from_sympy_docstrings():
    m = corpus.build(("math", "legal"), max_chars=5000, seed=1)
    text = " ".join(m.filter(pl.col("domain") == "math")["text"].to_list())
    assert ">>>" in text and m.filter(pl.col("domain") == "math")["source"].str.starts_with("sympy:").all()


def test_split_text_cuts_at_line_breaks():
    text = "a" * 5 + "\n" + "b" * 7 + "\n" + "c" * 25 + "\n"
    pieces = corpus.split_text(text, 10)
    assert all(len(p) <= 10 for p in pieces)
    assert "".join(pieces) == text
    assert pieces[0] == "aaaaa\n"


def test_user_folder_and_jsonl_corpora(tmp_path):
    for dom in ("news", "poems"):
        (tmp_path / "f" / dom).mkdir(parents=True)
        for i in range(3):
            (tmp_path / "f" / dom / f"{i}.txt").write_text(f"{dom} document {i}\n" * 20)
    f = corpus.build((), path=tmp_path / "f", max_chars=10_000, seed=0)
    assert set(f["domain"].cast(pl.String)) == {"news", "poems"} and f.height == 6
    rows = [{"text": f"line {i}\n" * 5, "domain": "a" if i % 2 else "b"} for i in range(6)]
    (tmp_path / "c.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    j = corpus.build(("a",), path=tmp_path / "c.jsonl", seed=0)
    assert set(j["domain"].cast(pl.String)) == {"a"} and j.height == 3


@pytest.mark.parametrize("setup,message", [
    (lambda p: p / "missing", "no such file or folder"),
    (lambda p: (p / "x.jsonl").write_text('{"body": "hi", "domain": "a"}') and p / "x.jsonl", "lacks column"),
    (lambda p: (p / "x.csv").write_text("a") and p / "x.csv", "expected a folder, .jsonl or .parquet"),
])
def test_bad_user_corpus_says_what_is_wrong(tmp_path, setup, message):
    with pytest.raises(corpus.CorpusError, match=message):
        corpus.build((), path=setup(tmp_path))


def test_unknown_builtin_domain():
    with pytest.raises(corpus.CorpusError, match="not built-in domains"):
        corpus.build(("prose", "poetry"))


def test_read_checks_the_file(tmp_path):
    with pytest.raises(corpus.CorpusError, match="does not exist"):
        corpus.read(tmp_path / "none.parquet")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(corpus.CorpusError, match="not a readable corpus"):
        corpus.read(tmp_path / "bad.parquet")


def test_the_legal_domain_reads_only_the_pinned_dependencies_licences():
    # an extra package in the environment (a linter, a notebook) must not change the corpus
    legal = corpus.build(("prose", "legal"), max_chars=1_000_000, seed=0).filter(pl.col("domain") == "legal")
    owners = {s.split(":", 1)[0] for s in legal["source"]}
    assert owners <= {"python", *corpus.LICENSED} and {"numpy", "torch"} <= owners
