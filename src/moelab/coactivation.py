"""Expert co-activation: is there pairwise structure beyond popularity? Measured honestly.

Per layer, from a trace's ``[tokens, k]`` expert sets:

- the co-activation matrix (pair counts: experts selected together by one token) and its Gini;
- a clustering of the experts into ``D`` equal groups, fitted on some documents (pair counts minus a
  closed-form popularity baseline) and scored on the others, never on a document it was fitted on
  (:func:`fit_score_split`): the share of scored pairs inside a group. A stream with too few
  documents for both sides falls back to the trace's ``split`` column (halves of each document), and
  says so;
- its **gain over chance**: that share divided by the share expected under a null that keeps
  BOTH margins (exactly k distinct experts per token, and each expert's load), estimated from
  ``draws`` randomisations (of at most ``null_tokens`` tokens: a share barely depends on size). The
  per-column shuffle of the reference study keeps only the loads, so under it even a random router
  looks structured; its analytic value is reported beside ours (``gain_column_null``);
- for a captured trace, given its corpus: the split keeps each corpus part's share on both sides, and
  the gain is also scored on the documents of each part alone (``gain_heldout_part``: text the
  embedded checkpoint never trained on; ``gain_train_part``: text it did);
- the **null gain**: the whole pipeline (fit, then score) run on a null trace. It is 1.00 up to
  noise by construction and is the line every real gain is read against;
- expert/domain mutual information (bits) with a null that shuffles domain labels across
  documents (tokens of one document stay together, so the null keeps their dependence).

The null sampler (:func:`null_draw`) is the bipartite configuration model: all token slots are
shuffled at once (margins exact), then slots that repeat an expert within a token are repaired
by swaps with random slots elsewhere that create no repeat (margins stay exact).
"""

from __future__ import annotations

from pathlib import Path

import numba as nb
import numpy as np
import polars as pl

from moelab.corpus import PARTS
from moelab.corpus import read as read_corpus
from moelab.grouping import cluster, intra_share, pair_counts
from moelab.stats import gini


# ---------------------------------------------------------------------------------------------
# Kernels.

@nb.njit(cache=True, nogil=True)
def _splitmix(state: np.ndarray) -> np.uint64:  # pragma: no cover - numba
    state[0] += np.uint64(0x9E3779B97F4A7C15)
    z = state[0]
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@nb.njit(cache=True, nogil=True)
def _has(flat: np.ndarray, row: int, k: int, x: int, skip: int) -> bool:  # pragma: no cover
    base = row * k
    for j in range(k):
        if j != skip and flat[base + j] == x:
            return True
    return False


@nb.njit(cache=True, nogil=True)
def _repair(flat: np.ndarray, k: int, seed: int) -> int:  # pragma: no cover - numba
    """Swap away repeated experts within tokens; returns the number of swaps (or -1 if stuck)."""
    state = np.array([np.uint64(seed)], np.uint64)
    n = flat.size // k
    swaps = 0
    for i in range(n):
        for a in range(k):
            x = flat[i * k + a]
            if not _has(flat, i, k, x, a):
                continue
            # slot a repeats an expert: swap it with a random slot s of another token r such that
            # r does not hold x and token i does not hold y = flat[s]
            for _ in range(1 << 20):
                s = int(_splitmix(state) % np.uint64(flat.size))
                r, b = s // k, s % k
                y = flat[s]
                if r == i or y == x:
                    continue
                if _has(flat, r, k, x, b) or _has(flat, i, k, y, a):
                    continue
                flat[i * k + a], flat[s] = y, x
                swaps += 1
                break
            else:
                return -1
    return swaps


def null_draw(experts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random ``[tokens, k]`` expert table with the same per-token k (distinct experts) and the
    same per-expert loads as ``experts`` (see the module docstring)."""
    n, k = experts.shape
    experts = np.ascontiguousarray(experts)
    loads = np.bincount(experts.ravel())
    saturated = np.flatnonzero(loads == n)  # in every token: fixed under both margins
    if saturated.size:
        rest = experts[~np.isin(experts, saturated)].reshape(n, k - saturated.size)
        if rest.shape[1] == 0:
            return experts.copy()
        out = np.empty_like(experts)
        out[:, :rest.shape[1]] = null_draw(rest, rng)
        out[:, rest.shape[1]:] = saturated
        return out
    flat = experts.ravel().copy()
    rng.shuffle(flat)
    if _repair(flat, k, int(rng.integers(1, 2**63))) < 0:
        raise RuntimeError("null_draw: could not repair repeated experts within 2^20 tries "
                           "(an expert is in nearly every token)")
    return flat.reshape(n, k)


# ---------------------------------------------------------------------------------------------
# Measures.

def upper(m: np.ndarray) -> np.ndarray:
    return m[np.triu_indices(m.shape[0], 1)]


def column_null_share(loads: np.ndarray, labels: np.ndarray) -> float:
    """Expected intra share under the per-column shuffle (loads kept, per-token k not):
    pair (e, f) is expected ``load_e * load_f / tokens`` times."""
    ll = np.outer(loads, loads).astype(np.float64)
    np.fill_diagonal(ll, 0.0)
    return intra_share(ll, labels)


def _null_pairs(experts: np.ndarray, E: int, rng: np.random.Generator, draws: int) -> np.ndarray:
    return sum(pair_counts(null_draw(experts, rng), E) for _ in range(draws)) / draws


def popularity_pairs(loads: np.ndarray, tokens: int, k: int) -> np.ndarray:
    """Pair counts popularity alone would give, in closed form: inclusion probabilities
    p = load / tokens, pairs ~ tokens * p_e * p_f rescaled to the k(k-1)/2 pairs per token.
    An approximation, used only to fit the groups: the gain is scored against sampled nulls."""
    p = np.asarray(loads, np.float64) / max(tokens, 1)
    m = np.outer(p, p)
    np.fill_diagonal(m, 0.0)
    total = m.sum()
    return m * (tokens * k * (k - 1) / total) if total else m


def subsample(experts: np.ndarray, rng: np.random.Generator, most: int | None) -> np.ndarray:
    """A seeded random subset of at most ``most`` tokens (all of them when ``most`` is None)."""
    if most is None or experts.shape[0] <= most:
        return experts
    return experts[np.sort(rng.choice(experts.shape[0], size=most, replace=False))]


def fit_groups(fit: np.ndarray, E: int, groups: int) -> np.ndarray:
    """Groups fitted on ``fit`` tokens: affinity = pair counts minus what popularity explains."""
    loads = np.bincount(fit.ravel(), minlength=E)
    affinity = pair_counts(fit, E) - popularity_pairs(loads, fit.shape[0], fit.shape[1])
    return cluster(affinity, groups, order_hint=np.lexsort((np.arange(E), -loads)))


def score_groups(score: np.ndarray, labels: np.ndarray, E: int, rng: np.random.Generator, draws: int = 1,
                 null_tokens: int | None = None) -> dict:
    """Intra-group share of ``score``'s pairs against ``draws`` samples of the both-margins null
    (estimated on at most ``null_tokens`` of its tokens: a share barely depends on size), and
    against the per-column shuffle."""
    share = intra_share(pair_counts(score, E), labels)
    null_share = intra_share(_null_pairs(subsample(score, rng, null_tokens), E, rng, draws), labels)
    col_share = column_null_share(np.bincount(score.ravel(), minlength=E), labels)
    return {"share": share, "null_share": null_share, "gain": share / null_share,
            "gain_column_null": share / col_share}


def clustering_gain(fit: np.ndarray, score: np.ndarray, E: int, groups: int,
                    rng: np.random.Generator, draws: int = 1, null_tokens: int | None = None) -> dict:
    """Fit groups on ``fit``, score them on ``score`` (see :func:`score_groups`). Returns labels,
    shares, gains. The fit may use any baseline: under the null the scored pairs have the null's
    expectation whatever the groups, so the gain's calibration rests on the scoring null alone."""
    labels = fit_groups(fit, E, groups)
    return {"labels": labels, **score_groups(score, labels, E, rng, draws, null_tokens)}


# ---------------------------------------------------------------------------------------------
# Which tokens fit the groups and which score them.

SCORE_SHARE = 0.5  # of the tokens (of each corpus part), in whole documents
SPLIT_DOCUMENTS = "documents"
SPLIT_HALVES = "document halves"
_M64 = (1 << 64) - 1


def _mix64(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on uint64 arrays (wraps modulo 2^64)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def document_split(doc: np.ndarray, seed: int, strata: np.ndarray | None = None,
                   share: float = SCORE_SHARE) -> np.ndarray | None:
    """Per token, True where its document is scored: whole documents, ordered by a seeded hash of
    their id, go to the score side until it holds ``share`` of the tokens (of each stratum when
    ``strata`` gives one per token; a document must lie in one). None when either side would be empty
    (one document; or one per stratum, as a lone document goes to the fit side)."""
    docs, inv, counts = np.unique(doc, return_inverse=True, return_counts=True)
    s = np.zeros(doc.size, np.int64) if strata is None else np.asarray(strata, np.int64)
    doc_stratum = np.zeros(docs.size, np.int64)
    doc_stratum[inv] = s
    if (doc_stratum[inv] != s).any():
        raise ValueError("document_split: a document lies in more than one stratum")
    salt = np.uint64(int(_mix64(np.array([seed & _M64], np.uint64))[0]))
    key = _mix64(docs.astype(np.uint64) ^ salt)  # order by id and seed: other documents only move the cut
    scored = np.zeros(docs.size, bool)
    for st in np.unique(doc_stratum):
        idx = np.flatnonzero(doc_stratum == st)
        idx = idx[np.lexsort((docs[idx], key[idx]))]
        n = counts[idx]
        before = np.cumsum(n) - n
        scored[idx] = before + n / 2 < share * n.sum()  # a document goes where most of it falls
    if scored.all() or not scored.any():
        return None
    return scored[inv]


def fit_score_split(doc: np.ndarray, is_test: np.ndarray, seed: int,
                    strata: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """(is_score per token, the split's name): whole documents (:func:`document_split`), or, where
    the stream has too few documents for both sides, the trace's ``split`` column (second half of each
    document scored, so fit and score share documents)."""
    scored = document_split(doc, seed, strata)
    if scored is None:
        return np.asarray(is_test, bool), SPLIT_HALVES
    return scored, SPLIT_DOCUMENTS


def read_doc_parts(path: str | Path) -> pl.DataFrame:
    """``doc`` (as Int64), ``domain`` and ``part`` (as strings) of a corpus table (``moelab.corpus``)."""
    frame = read_corpus(path, columns=("doc", "domain", "part"))
    return frame.select(pl.col("doc").cast(pl.Int64), pl.col("domain", "part").cast(pl.String))


def token_parts(doc: np.ndarray, domain: np.ndarray, meta, corpus: pl.DataFrame) -> np.ndarray:  # noqa: ANN001
    """Per token, the index in :data:`moelab.corpus.PARTS` of its document's corpus part. Raises
    ValueError when the trace was not captured from ``corpus``: a document id it lacks, a document
    whose domain differs, or a part the capture did not stream (``meta.config['parts']``)."""
    ids = corpus.get_column("doc").to_numpy()
    order = np.argsort(ids, kind="stable")
    if (np.diff(ids[order]) == 0).any():
        raise ValueError("the corpus table repeats a doc id")
    docs, first = np.unique(doc, return_index=True)
    at = order[np.minimum(np.searchsorted(ids[order], docs), ids.size - 1)]
    missing = docs[ids[at] != docs]
    if missing.size:
        raise ValueError(f"trace {meta.source_id}: {missing.size} document id(s) not in the corpus "
                         f"(first {int(missing[0])}): it was not captured from this corpus")
    want = np.asarray(corpus.get_column("domain").to_list(), object)[at]
    got = np.asarray([meta.domains[int(c)] for c in domain[first]], object)
    bad = np.flatnonzero(want != got)
    if bad.size:
        d = int(docs[bad[0]])
        raise ValueError(f"trace {meta.source_id}: document {d} is {got[bad[0]]!r} in the trace, "
                         f"{want[bad[0]]!r} in the corpus: it was not captured from this corpus")
    names = np.asarray(corpus.get_column("part").to_list(), object)[at]
    unknown = sorted(set(names) - set(PARTS))
    if unknown:
        raise ValueError(f"the corpus has part(s) {unknown}, expected {list(PARTS)}")
    streamed = meta.config.get("parts")
    extra = sorted(set(names) - set(streamed)) if streamed is not None else []
    if extra:
        raise ValueError(f"trace {meta.source_id}: documents of part(s) {extra}, but its capture streamed "
                         f"only {streamed}: it was not captured from this corpus")
    code = np.asarray([PARTS.index(p) for p in names], np.int64)
    return code[np.searchsorted(docs, doc)]


def domain_mi(experts: np.ndarray, doc: np.ndarray, domain: np.ndarray, E: int,
              rng: np.random.Generator, draws: int = 50) -> dict:
    """Mutual information (bits) between an activation's expert and its token's domain, with a
    null that permutes domain labels across documents."""
    docs, doc_idx = np.unique(doc, return_inverse=True)
    flat = (doc_idx.astype(np.int64)[:, None] * E + experts).ravel()
    per_doc = np.bincount(flat, minlength=docs.size * E).reshape(docs.size, E).astype(np.float64)
    dom_of_doc = np.zeros(docs.size, np.int64)
    dom_of_doc[doc_idx] = domain
    n_dom = int(domain.max()) + 1 if domain.size else 1

    def mi(labels: np.ndarray) -> float:
        joint = np.eye(n_dom)[labels].T @ per_doc
        p = joint / joint.sum()
        pd, pe = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
        nz = p > 0
        return float((p[nz] * np.log2(p[nz] / (pd @ pe)[nz])).sum())

    observed = mi(dom_of_doc)
    null = np.array([mi(rng.permutation(dom_of_doc)) for _ in range(draws)]) if n_dom > 1 \
        else np.zeros(1)
    joint = np.eye(n_dom)[dom_of_doc].T @ per_doc
    return {"mi_bits": observed, "mi_null_mean": float(null.mean()),
            "mi_null_p95": float(np.quantile(null, 0.95)), "joint": joint}


def _part_columns() -> dict[str, pl.DataType]:
    return {**{f"gain_{p}_part": pl.Float64 for p in PARTS},
            **{f"score_tokens_{p}_part": pl.Int64 for p in PARTS}}


def analyse(trace, groups: int, seed: int, draws: int = 1, mi_draws: int = 50,  # noqa: ANN001
            max_tokens: int | None = None, null_tokens: int | None = 1 << 17,
            corpus: pl.DataFrame | None = None) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Per-layer co-activation and domain analysis of a :class:`moelab.traces.Trace`.

    Returns (layers, pairs, domain_expert): ``layers`` one row per layer; ``pairs`` the
    co-activation matrix in long form with each expert's group and its position in
    cluster order (for heatmaps); ``domain_expert`` each domain's expert distribution.
    Uses the first ``max_tokens`` tokens of the stream when set, and null samples of at most
    ``null_tokens`` tokens per side (both stated in the output). Groups are fitted on whole
    documents and scored on others (:func:`fit_score_split`; column ``split`` names the split used).
    With ``corpus`` (:func:`read_doc_parts`; the trace must have been captured from it) the split
    keeps each corpus part's share, and ``gain_<part>_part`` scores the documents of each part alone.
    """
    m = trace.meta
    E = m.num_experts
    ex = trace.experts_by_layer()
    cols = trace.token_columns()
    n = ex.shape[0] if not max_tokens else min(max_tokens, ex.shape[0])
    ex = ex[:n]
    doc = cols["doc"][:n]
    domain = cols["domain_code"][:n].astype(np.int64)
    part = None if corpus is None else token_parts(doc, domain, m, corpus)
    is_score, split = fit_score_split(doc, cols["is_test"][:n], seed, part)
    docs_fit, docs_score = np.unique(doc[~is_score]), np.unique(doc[is_score])
    rows, pair_frames, dom_frames = [], [], []
    for layer in range(m.n_moe_layers):
        rng = np.random.default_rng([seed, layer])
        e = ex[:, layer, :]
        fit, score = e[~is_score], e[is_score]
        res = clustering_gain(fit, score, E, groups, rng, draws, null_tokens)
        pairs = pair_counts(e, E)
        # The same pipeline on a null trace: what "no structure" scores, noise included.
        res0 = clustering_gain(null_draw(subsample(fit, rng, null_tokens), rng),
                               null_draw(subsample(score, rng, null_tokens), rng), E, groups, rng, draws)
        by_part = {}  # the same groups scored on each corpus part's documents alone
        for i, p in enumerate(PARTS):
            sel = None if part is None else e[is_score & (part == i)]
            by_part[f"score_tokens_{p}_part"] = None if sel is None else int(sel.shape[0])
            by_part[f"gain_{p}_part"] = (score_groups(sel, res["labels"], E, rng, draws, null_tokens)["gain"]
                                         if sel is not None and sel.shape[0] else None)
        mi = domain_mi(e, doc, domain, E, rng, mi_draws)
        rows.append({"layer": layer, "decoder_layer": m.layer_index[layer], "tokens": n, "split": split,
                     "fit_tokens": int((~is_score).sum()), "score_tokens": int(is_score.sum()),
                     "fit_documents": int(docs_fit.size), "score_documents": int(docs_score.size),
                     "shared_documents": int(np.intersect1d(docs_fit, docs_score).size),
                     "groups": groups, "null_tokens": int(min(null_tokens or n, n)),
                     "coact_gini": gini(upper(pairs)),
                     "intra_share": res["share"], "null_share": res["null_share"],
                     "gain": res["gain"], "gain_null": res0["gain"],
                     "gain_column_null": res["gain_column_null"], **by_part,
                     "mi_bits": mi["mi_bits"], "mi_null_mean": mi["mi_null_mean"],
                     "mi_null_p95": mi["mi_null_p95"]})
        labels = res["labels"]
        order = np.lexsort((np.arange(E), labels))
        rank = np.empty(E, np.int64)
        rank[order] = np.arange(E)
        a, b = np.meshgrid(np.arange(E), np.arange(E), indexing="ij")
        pair_frames.append(pl.DataFrame({
            "layer": np.full(E * E, layer, np.int32), "a": a.ravel().astype(np.int32),
            "b": b.ravel().astype(np.int32), "count": pairs.ravel(),
            "group_a": labels[a.ravel()].astype(np.int32), "rank_a": rank[a.ravel()].astype(np.int32),
            "rank_b": rank[b.ravel()].astype(np.int32)}))
        joint = mi["joint"]
        share = joint / np.maximum(joint.sum(1, keepdims=True), 1)
        d, x = np.meshgrid(np.arange(joint.shape[0]), np.arange(E), indexing="ij")
        dom_frames.append(pl.DataFrame({
            "layer": np.full(d.size, layer, np.int32),
            "domain": [m.domains[i] if i < len(m.domains) else str(i) for i in d.ravel()],
            "expert": x.ravel().astype(np.int32), "share": share.ravel()}))
    layers = pl.DataFrame(rows).with_columns(pl.col(c).cast(t) for c, t in _part_columns().items())
    return layers, pl.concat(pair_frames), pl.concat(dom_frames)
