"""Expert co-activation: is there pairwise structure beyond popularity? Measured honestly.

Per layer, from a trace's ``[tokens, k]`` expert sets:

- the co-activation matrix (pair counts: experts selected together by one token) and its Gini;
- a clustering of the experts into ``D`` equal groups, fitted on the ``train`` split (pair
  counts minus a closed-form popularity baseline), scored on the ``test`` split: the share of
  test pairs inside a group;
- its **gain over chance**: that share divided by the share expected under a null that keeps
  BOTH margins (exactly k distinct experts per token, and each expert's load), estimated from
  ``draws`` randomisations (of at most ``null_tokens`` tokens: a share barely depends on size). The per-column shuffle of the reference study keeps only the loads,
  so under it even a random router looks structured; its analytic value is reported beside ours
  (``gain_column_null``) to show the difference;
- the **null gain**: the whole pipeline (fit on train, score on test) run on a null trace. It
  is 1.00 up to noise by construction and is the line every real gain is read against;
- expert/domain mutual information (bits) with a null that shuffles domain labels across
  documents (tokens of one document stay together, so the null keeps their dependence).

The null sampler (:func:`null_draw`) is the bipartite configuration model: all token slots are
shuffled at once (margins exact), then slots that repeat an expert within a token are repaired
by swaps with random slots elsewhere that create no repeat (margins stay exact).
"""

from __future__ import annotations

import numba as nb
import numpy as np
import polars as pl

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


def clustering_gain(train: np.ndarray, test: np.ndarray, E: int, groups: int,
                    rng: np.random.Generator, draws: int = 1, null_tokens: int | None = None) -> dict:
    """Fit groups on ``train`` (affinity = pair counts minus what popularity explains), score on
    ``test`` against ``draws`` samples of the both-margins null. Returns labels, shares, gains.
    The fit may use any baseline: under the null the test pairs have the null's expectation
    whatever the groups, so the gain's calibration rests on the scoring null alone. The null
    share is estimated on at most ``null_tokens`` test tokens (a share barely depends on size)."""
    p_train = pair_counts(train, E)
    loads_train = np.bincount(train.ravel(), minlength=E)
    affinity = p_train - popularity_pairs(loads_train, train.shape[0], train.shape[1])
    labels = cluster(affinity, groups, order_hint=np.lexsort((np.arange(E), -loads_train)))
    p_test = pair_counts(test, E)
    share = intra_share(p_test, labels)
    null_share = intra_share(_null_pairs(subsample(test, rng, null_tokens), E, rng, draws), labels)
    col_share = column_null_share(np.bincount(test.ravel(), minlength=E), labels)
    return {"labels": labels, "pairs": p_train + p_test, "share": share, "null_share": null_share,
            "gain": share / null_share, "gain_column_null": share / col_share}


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


def analyse(trace, groups: int, seed: int, draws: int = 1, mi_draws: int = 50,  # noqa: ANN001
            max_tokens: int | None = None, null_tokens: int | None = 1 << 17,
            ) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Per-layer co-activation and domain analysis of a :class:`moelab.traces.Trace`.

    Returns (layers, pairs, domain_expert): ``layers`` one row per layer; ``pairs`` the
    co-activation matrix in long form with each expert's group and its position in
    cluster order (for heatmaps); ``domain_expert`` each domain's expert distribution.
    Uses the first ``max_tokens`` tokens of the stream when set, and null samples of at most
    ``null_tokens`` tokens per split (both stated in the output).
    """
    m = trace.meta
    E = m.num_experts
    ex = trace.experts_by_layer()
    cols = trace.token_columns()
    n = ex.shape[0] if not max_tokens else min(max_tokens, ex.shape[0])
    ex = ex[:n]
    is_test = cols["is_test"][:n]
    doc = cols["doc"][:n]
    domain = cols["domain_code"][:n].astype(np.int64)
    rows, pair_frames, dom_frames = [], [], []
    for layer in range(m.n_moe_layers):
        rng = np.random.default_rng([seed, layer])
        e = ex[:, layer, :]
        train, test = e[~is_test], e[is_test]
        res = clustering_gain(train, test, E, groups, rng, draws, null_tokens)
        # The same pipeline on a null trace: what "no structure" scores, noise included.
        res0 = clustering_gain(null_draw(subsample(train, rng, null_tokens), rng),
                               null_draw(subsample(test, rng, null_tokens), rng), E, groups, rng, draws)
        mi = domain_mi(e, doc, domain, E, rng, mi_draws)
        rows.append({"layer": layer, "decoder_layer": m.layer_index[layer], "tokens": n,
                     "train_tokens": int((~is_test).sum()), "test_tokens": int(is_test.sum()),
                     "groups": groups, "null_tokens": int(min(null_tokens or n, n)),
                     "coact_gini": gini(upper(res["pairs"])),
                     "intra_share": res["share"], "null_share": res["null_share"],
                     "gain": res["gain"], "gain_null": res0["gain"],
                     "gain_column_null": res["gain_column_null"],
                     "mi_bits": mi["mi_bits"], "mi_null_mean": mi["mi_null_mean"],
                     "mi_null_p95": mi["mi_null_p95"]})
        labels = res["labels"]
        order = np.lexsort((np.arange(E), labels))
        rank = np.empty(E, np.int64)
        rank[order] = np.arange(E)
        a, b = np.meshgrid(np.arange(E), np.arange(E), indexing="ij")
        pair_frames.append(pl.DataFrame({
            "layer": np.full(E * E, layer, np.int32), "a": a.ravel().astype(np.int32),
            "b": b.ravel().astype(np.int32), "count": res["pairs"].ravel(),
            "group_a": labels[a.ravel()].astype(np.int32), "rank_a": rank[a.ravel()].astype(np.int32),
            "rank_b": rank[b.ravel()].astype(np.int32)}))
        joint = mi["joint"]
        share = joint / np.maximum(joint.sum(1, keepdims=True), 1)
        d, x = np.meshgrid(np.arange(joint.shape[0]), np.arange(E), indexing="ij")
        dom_frames.append(pl.DataFrame({
            "layer": np.full(d.size, layer, np.int32),
            "domain": [m.domains[i] if i < len(m.domains) else str(i) for i in d.ravel()],
            "expert": x.ravel().astype(np.int32), "share": share.ravel()}))
    return pl.DataFrame(rows), pl.concat(pair_frames), pl.concat(dom_frames)
