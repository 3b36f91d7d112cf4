import numpy as np
import polars as pl
import pytest

from moelab import coactivation as co
from moelab import stream
from moelab.traces import Trace, TraceMeta, build_table

E, K = 32, 8


def random_router(rng, n, bias_scale=1.0):
    """Independent tokens, top-k of gaussian logits plus a per-expert bias (popularity)."""
    bias = np.random.default_rng(0).normal(0, bias_scale, E)
    return np.argsort(-(rng.normal(size=(n, E)) + bias), 1)[:, :K].astype(np.uint16)


def planted_router(rng, n, strength):
    """Tokens pick a team of 8 experts and favour it: real pairwise structure."""
    teams = np.arange(E).reshape(4, 8)
    logits = rng.normal(size=(n, E))
    logits[np.arange(n)[:, None], teams[rng.integers(0, 4, n)]] += strength
    return np.argsort(-logits, 1)[:, :K].astype(np.uint16)


def test_null_draw_keeps_both_margins_exactly(rng):
    ex = random_router(rng, 20_000, bias_scale=2.0)  # skewed: the hottest experts near saturation
    null = co.null_draw(ex, rng)
    assert null.shape == ex.shape
    assert (np.sort(null, 1)[:, 1:] != np.sort(null, 1)[:, :-1]).all(), "a token repeats an expert"
    assert np.array_equal(np.bincount(null.ravel(), minlength=E), np.bincount(ex.ravel(), minlength=E))
    assert not np.array_equal(null, ex)


def test_null_draw_keeps_saturated_experts_in_every_token(rng):
    ex = random_router(rng, 5000, bias_scale=1.0)
    ex[:, 0] = 31  # expert 31 in every token
    ex = np.where((ex == 31) & (np.arange(K) > 0), ex[:, :1] * 0 + 30, ex)  # keep rows distinct
    ex = np.sort(ex, 1)
    assume = (np.sort(ex, 1)[:, 1:] != np.sort(ex, 1)[:, :-1]).all(1)
    ex = ex[assume]
    null = co.null_draw(ex, rng)
    assert (null == 31).any(1).all()
    assert np.array_equal(np.bincount(null.ravel(), minlength=E), np.bincount(ex.ravel(), minlength=E))


@pytest.mark.parametrize("bias_scale", [0.0, 1.0, 2.0])
def test_null_scores_chance_on_a_random_router(bias_scale):
    rng = np.random.default_rng(int(bias_scale * 10))
    ex = random_router(rng, 40_000, bias_scale)
    res = co.clustering_gain(ex[:20_000], ex[20_000:], E, 8, rng)
    assert res["gain"] == pytest.approx(1.0, abs=0.03)


def test_planted_coactivation_is_detected_and_recovered(rng):
    ex = planted_router(rng, 20_000, 1.0)
    res = co.clustering_gain(ex[:10_000], ex[10_000:], E, 4, rng)
    assert res["gain"] > 1.2
    # the fitted groups are the planted teams
    groups = {tuple(np.flatnonzero(res["labels"] == g)) for g in range(4)}
    assert groups == {tuple(range(8 * t, 8 * t + 8)) for t in range(4)}


def test_domain_mi_is_zero_for_domain_blind_routing_and_positive_otherwise(rng):
    n, docs = 20_000, 200
    doc = np.repeat(np.arange(docs), n // docs)
    domain = doc % 4
    blind = random_router(rng, n)
    r0 = co.domain_mi(blind, doc, domain, E, rng, draws=20)
    assert r0["mi_bits"] < r0["mi_null_p95"] + 0.005
    logits = rng.normal(size=(n, E))
    logits[np.arange(n)[:, None], (domain[:, None] * 8 + np.arange(8))] += 1.0
    aware = np.argsort(-logits, 1)[:, :K]
    r1 = co.domain_mi(aware, doc, domain, E, rng, draws=20)
    assert r1["mi_bits"] > 10 * r1["mi_null_mean"] and r1["mi_bits"] > 0.1


# ---------------------------------------------------------------------------------------------
# The whole pipeline on traces: document split, corpus parts, calibration.

def make_trace(experts, doc, pos, length, domain_code=None, domains=("d",), source_kind="synthetic",
               config=None):
    """A validated trace from ``experts [tokens, layers, k]`` and per-token document columns."""
    n, L, k = experts.shape
    meta = TraceMeta(source_kind, "t", E, k, L, 1, domains, config=config or {})
    table = build_table(meta, t=np.arange(n), doc=doc, pos=pos, token=None,
                        domain_code=np.zeros(n, np.int8) if domain_code is None else domain_code,
                        is_test=2 * pos >= length, experts=experts, weights=np.full((n, L, k), 1 / k, np.float32))
    return Trace(meta, pl.from_arrow(table))


def interleaved_docs(rng, n, mean_len, ids=None):
    """Per token (doc, pos, length) of ``n`` tokens of documents of random lengths served by continuous
    batching (16 at a time, so their tokens interleave); doc ids from ``ids`` (default 0, 1, ...)."""
    lengths = rng.integers(1, 2 * mean_len, 2 * n // mean_len + 16)
    st = stream.schedule(lengths, 16, n // 16)
    doc = st.request if ids is None else ids[st.request]
    return doc, st.pos, st.length


@pytest.mark.parametrize("seed", range(6))
def test_the_document_split_never_puts_one_document_on_both_sides(seed):
    rng = np.random.default_rng(seed)
    ids = rng.choice(2**32 - 1, 5000, replace=False)  # sparse ids up to the u32 limit
    doc, _, _ = interleaved_docs(rng, 50_000, 40, ids)
    strata = (doc % 3 == 0).astype(np.int64)  # a part per document
    for st in (None, strata):
        scored = co.document_split(doc, seed, st)
        assert not set(doc[scored]) & set(doc[~scored])
        for s in np.unique(st if st is not None else [0]):
            mine = scored if st is None else scored[st == s]
            assert abs(mine.mean() - co.SCORE_SHARE) < 0.02  # whole documents still hit the share
        assert np.array_equal(scored, co.document_split(doc, seed, st))  # deterministic
        assert not np.array_equal(scored, co.document_split(doc, seed + 1, st))  # and seeded
    # the order depends on a document's id and the seed only: dropping half the documents moves few sides
    some = doc < np.median(ids)
    assert np.mean(co.document_split(doc, seed)[some] == co.document_split(doc[some], seed)) > 0.9


def test_the_analysis_never_fits_and_scores_one_document(rng):
    doc, pos, length = interleaved_docs(rng, 20_000, 30)
    tr = make_trace(random_router(rng, 20_000)[:, None, :], doc, pos, length)
    layers, _, _ = co.analyse(tr, 4, seed=3, mi_draws=2)
    r = layers.row(0, named=True)
    assert r["split"] == co.SPLIT_DOCUMENTS and r["shared_documents"] == 0
    assert r["fit_tokens"] + r["score_tokens"] == 20_000
    assert r["gain_heldout_part"] is None and r["score_tokens_train_part"] is None  # no corpus


def test_a_stream_of_one_document_falls_back_to_its_halves(rng):
    n = 4000
    pos = np.arange(n)
    tr = make_trace(random_router(rng, n)[:, None, :], np.zeros(n, np.int64), pos, np.full(n, n))
    scored, name = co.fit_score_split(np.zeros(n, np.int64), 2 * pos >= n, 1)
    assert name == co.SPLIT_HALVES and np.array_equal(scored, 2 * pos >= n)
    layers, _, _ = co.analyse(tr, 4, seed=1, mi_draws=2)
    assert layers["split"].to_list() == [co.SPLIT_HALVES]
    assert layers["shared_documents"].to_list() == [1]
    assert layers["fit_tokens"].to_list() == [n // 2]


def corpus_and_trace(rng, n=30_000, planted=1.0):
    """A corpus of 600 documents in two domains (every fifth held out) and a trace streamed from it
    whose held-out documents carry planted co-activation and whose train documents do not."""
    corpus = pl.DataFrame({"doc": np.arange(600), "domain": ["a", "b"] * 300,
                           "part": ["heldout" if d % 5 == 0 else "train" for d in range(600)]})
    doc, pos, length = interleaved_docs(rng, n, 60, ids=rng.permutation(600))
    ex = np.where((doc % 5 == 0)[:, None], planted_router(rng, n, planted), random_router(rng, n))
    tr = make_trace(ex[:, None, :], doc, pos, length, domain_code=(doc % 2).astype(np.int8),
                    domains=("a", "b"), source_kind="captured", config={"parts": ["train", "heldout"]})
    return corpus, tr


def test_the_corpus_parts_are_scored_apart(rng):
    corpus, tr = corpus_and_trace(rng)
    layers, _, _ = co.analyse(tr, 4, seed=2, mi_draws=2, corpus=corpus)
    r = layers.row(0, named=True)
    assert r["split"] == co.SPLIT_DOCUMENTS and r["shared_documents"] == 0
    assert r["score_tokens_heldout_part"] + r["score_tokens_train_part"] == r["score_tokens"]
    doc = tr.token_columns()["doc"]
    held = doc % 5 == 0
    # each part keeps its share on both sides
    assert abs(r["score_tokens_heldout_part"] / held.sum() - co.SCORE_SHARE) < 0.1
    assert abs(r["score_tokens_train_part"] / (~held).sum() - co.SCORE_SHARE) < 0.05
    # the planted teams live in the held-out documents only
    assert r["gain_heldout_part"] > 1.1 and abs(r["gain_train_part"] - 1) < 0.05


def test_a_trace_not_captured_from_the_corpus_is_refused(rng):
    corpus, tr = corpus_and_trace(rng, n=2000)
    d = int(tr.token_columns()["doc"][0])
    with pytest.raises(ValueError, match="1 document id\\(s\\) not in the corpus"):
        co.analyse(tr, 4, seed=2, mi_draws=2, corpus=corpus.filter(pl.col("doc") != d))
    other = "b" if d % 2 == 0 else "a"
    swapped = corpus.with_columns(domain=pl.when(pl.col("doc") == d).then(pl.lit(other)).otherwise("domain"))
    with pytest.raises(ValueError, match=f"document {d} is '{'ab'[d % 2]}' in the trace, '{other}' in the corpus"):
        co.analyse(tr, 4, seed=2, mi_draws=2, corpus=swapped)
    only_train = TraceMeta(**{**tr.meta.__dict__, "config": {"parts": ["train"]}})
    with pytest.raises(ValueError, match="part\\(s\\) \\['heldout'\\], but its capture streamed only"):
        co.analyse(Trace(only_train, tr.frame), 4, seed=2, mi_draws=2, corpus=corpus)


def null_trace(n, bias_scale, k, seed):
    """A trace drawn from the both-margins null (no pairwise structure at all) with a popularity bias."""
    rng = np.random.default_rng(seed)
    bias = np.random.default_rng(0).normal(0, bias_scale, E)
    ex = co.null_draw(np.argsort(-(rng.normal(size=(n, E)) + bias), 1)[:, :k].astype(np.uint16), rng)
    doc, pos, length = interleaved_docs(rng, n, 60)
    return make_trace(ex[:, None, :], doc, pos, length)


@pytest.mark.parametrize("bias_scale", [0.0, 0.5, 1.0, 2.0, 3.0])  # flat to the hottest expert in ~all tokens
def test_the_whole_pipeline_reads_one_on_null_traces(bias_scale):
    tr = null_trace(200_000, bias_scale, K, seed=int(10 * bias_scale))
    loads = np.bincount(tr.experts().ravel(), minlength=E) / tr.n_tokens
    layers, _, _ = co.analyse(tr, 8, seed=1, draws=4, mi_draws=1)
    r = layers.row(0, named=True)
    assert r["split"] == co.SPLIT_DOCUMENTS
    assert r["gain"] == pytest.approx(1.0, abs=0.01)
    assert r["gain_null"] == pytest.approx(1.0, abs=0.01)
    if bias_scale >= 2:
        assert loads.max() > 0.9 and loads.min() < 0.01  # the range is real: strongly skewed


def test_the_column_shuffle_is_clearly_off_where_the_both_margins_null_is_not():
    # the reference study's null keeps loads only; on a skewed null trace it reads structure
    tr = null_trace(400_000, 2.0, 4, seed=5)
    r = co.analyse(tr, 8, seed=1, draws=4, mi_draws=1)[0].row(0, named=True)
    assert r["gain"] == pytest.approx(1.0, abs=0.01)
    assert r["gain_column_null"] > 1.05
