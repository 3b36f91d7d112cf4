"""Expert cache simulation for one MoE layer, with the semantics pinned in ``docs/stages/caching.md``.

A request is one token's k experts in one layer; all must be resident. Each missing one is a
demand load. An expert of the current request is never evicted to serve that same request
(so ``capacity >= k``). Policies differ only in whom they evict:

- ``lru``: least recently used; the request's hits are refreshed before its misses load.
- ``lfu``: static LFU: the lowest frequency fitted on the requests before ``start`` (ties: the
  higher id goes first); frequencies never change while scoring.
- ``belady``: the resident whose next use is farthest (never again = infinitely far; ties:
  lowest id). Offline and optimal: the lower bound of any eviction policy.
- ``coact``: LRU plus a co-activation prefetcher: after each request, the ``prefetch`` experts most
  co-activated with it (pair counts fitted before ``start``; ties: lowest id) that are not resident are
  loaded as most recent. Those loads are bandwidth: ``loads_per_activation`` counts them with the misses.

Misses are counted on requests ``t >= start`` only; earlier requests warm the cache.

``next_token_hit_rates`` asks the prefetch question without a cache (the reference study's test 2): for
consecutive tokens of one request, how many of the next token's experts are among B predicted ones.
``cache_table`` and ``prefetch_table`` run both over a trace's layers (fit before the split, score after).
"""

from __future__ import annotations

import numba as nb
import numpy as np
import polars as pl

POLICIES = ("lru", "lfu", "belady", "coact")
PREDICTORS = ("lfu", "recent", "coact")
_NEVER = np.iinfo(np.int64).max


# The LRU list: a doubly linked list over experts in prev/nxt; lst = [head (most recent), tail (eviction
# candidate), size]. Helpers mutate the arrays in place.
@nb.njit(cache=True, inline="always")
def _push_front(e: int, prev: np.ndarray, nxt: np.ndarray, lst: np.ndarray) -> None:  # pragma: no cover
    if lst[1] < 0:
        lst[1] = e
    prev[e] = -1
    nxt[e] = lst[0]
    if lst[0] >= 0:
        prev[lst[0]] = e
    lst[0] = e


@nb.njit(cache=True, inline="always")
def _load(e: int, C: int, resident: np.ndarray, prev: np.ndarray, nxt: np.ndarray,
          lst: np.ndarray) -> None:  # pragma: no cover - numba
    if lst[2] == C:  # evict the tail (never an expert of the request being served: C >= k)
        v = lst[1]
        lst[1] = prev[v]
        nxt[lst[1]] = -1
        resident[v] = False
    else:
        lst[2] += 1
    resident[e] = True
    _push_front(e, prev, nxt, lst)


@nb.njit(cache=True)
def _lru(req: np.ndarray, E: int, C: int, start: int, co: np.ndarray,
         prefetch: int) -> tuple[int, int]:  # pragma: no cover - numba
    prev = np.full(E, -1, np.int64)
    nxt = np.full(E, -1, np.int64)
    lst = np.array([-1, -1, 0], np.int64)
    resident = np.zeros(E, np.bool_)
    misses, loads = 0, 0
    T, k = req.shape
    score = np.zeros(E, np.float64)
    for t in range(T):
        if prefetch > 0 and t > 0:  # prefetch for this request what the previous one predicts
            score[:] = 0.0
            for j in range(k):
                score += co[req[t - 1, j]]
            for j in range(k):
                score[req[t - 1, j]] = -1.0  # already resident
            order = np.argsort(-score, kind="mergesort")  # stable: ties lowest id
            for i in range(prefetch):
                e = order[i]
                if score[e] <= 0.0:
                    break
                if not resident[e]:  # the previous request has been served: any resident may go
                    loads += t >= start
                    _load(e, C, resident, prev, nxt, lst)
        for j in range(k):  # refresh the request's hits first...
            e = req[t, j]
            if resident[e] and e != lst[0]:
                p, q = prev[e], nxt[e]
                nxt[p] = q
                if q >= 0:
                    prev[q] = p
                else:
                    lst[1] = p
                _push_front(e, prev, nxt, lst)
        for j in range(k):  # ...then load its misses
            e = req[t, j]
            if not resident[e]:
                misses += t >= start
                _load(e, C, resident, prev, nxt, lst)
    return misses, loads


@nb.njit(cache=True)
def _priority_cache(req: np.ndarray, E: int, C: int, start: int, belady: bool,
                    freq: np.ndarray) -> int:  # pragma: no cover - numba
    T, k = req.shape
    resident = np.zeros(E, np.bool_)
    in_req = np.zeros(E, np.int64) - 1  # request index that last touched e
    next_use = np.full(E, _NEVER, np.int64)
    # next occurrence after each activation, by a backward pass
    upcoming = np.full(E, _NEVER, np.int64)
    nxt_of = np.empty((T, k), np.int64)
    for t in range(T - 1, -1, -1):
        for j in range(k):
            nxt_of[t, j] = upcoming[req[t, j]]
        for j in range(k):
            upcoming[req[t, j]] = t
    size, misses = 0, 0
    for t in range(T):
        for j in range(k):
            in_req[req[t, j]] = t
        for j in range(k):
            e = req[t, j]
            next_use[e] = nxt_of[t, j]
            if resident[e]:
                continue
            if t >= start:
                misses += 1
            if size == C:
                victim, best_next, best_freq = -1, -1, 0.0
                for v in range(E):
                    if not resident[v] or in_req[v] == t:
                        continue
                    if belady:
                        if next_use[v] > best_next:  # ties: lowest id (strict >)
                            victim, best_next = v, next_use[v]
                    else:
                        if victim < 0 or freq[v] <= best_freq:  # ties: the higher id goes first
                            victim, best_freq = v, freq[v]
                resident[victim] = False
            else:
                size += 1
            resident[e] = True
    return misses


def coactivation_counts(requests: np.ndarray, num_experts: int) -> np.ndarray:
    """``[E, E]`` float: how many requests hold both experts (zero diagonal)."""
    req = np.asarray(requests, dtype=np.int64)
    onehot = np.zeros((len(req), num_experts), np.float32)
    np.put_along_axis(onehot, req, 1.0, axis=1)
    co = (onehot.T @ onehot).astype(np.float64)
    np.fill_diagonal(co, 0.0)
    return co


def simulate(requests: np.ndarray, num_experts: int, capacity: int, policy: str, start: int = 0,
             prefetch: int = 0) -> dict:
    """Demand misses of a capacity-``capacity`` cache over ``requests`` ``[T, k]`` (one layer).

    Returns misses, prefetch loads, scored activations, the miss rate (misses per scored activation) and
    loads per activation (misses plus prefetch loads). ``prefetch`` is the coact policy's budget per request."""
    req = np.ascontiguousarray(requests, dtype=np.int64)
    T, k = req.shape
    if policy not in POLICIES:
        raise ValueError(f"policy={policy!r}: expected one of {POLICIES}")
    if not k <= capacity <= num_experts:
        raise ValueError(f"capacity={capacity} must lie in [top_k={k}, num_experts={num_experts}]")
    if not 0 <= start <= T:
        raise ValueError(f"start={start} outside [0, {T}]")
    if policy == "coact" and not 0 < prefetch <= num_experts:
        raise ValueError(f"prefetch={prefetch}: the coact policy needs a budget in [1, {num_experts}]")
    loads = 0
    if policy in ("lru", "coact"):
        co = coactivation_counts(req[:start], num_experts) if policy == "coact" else np.zeros((1, 1))
        misses, loads = _lru(req, num_experts, capacity, start, co, prefetch if policy == "coact" else 0)
    else:
        freq = np.bincount(req[:start].ravel(), minlength=num_experts).astype(np.float64)
        misses = _priority_cache(req, num_experts, capacity, start, policy == "belady", freq)
    scored = (T - start) * k
    return {"policy": policy, "capacity": capacity, "misses": int(misses), "prefetch_loads": int(loads),
            "activations": int(scored), "miss_rate": misses / scored if scored else float("nan"),
            "loads_per_activation": (misses + loads) / scored if scored else float("nan")}


def next_pairs(doc: np.ndarray, pos: np.ndarray, start: int) -> tuple[np.ndarray, np.ndarray]:
    """Row pairs (a, b): b is the next token of a's request, both at ``t >= start``."""
    order = np.lexsort((pos, doc))
    a, b = order[:-1], order[1:]
    keep = (doc[a] == doc[b]) & (pos[b] == pos[a] + 1) & (a >= start) & (b >= start)
    return a[keep], b[keep]


def next_token_hit_rates(requests: np.ndarray, doc: np.ndarray, pos: np.ndarray, num_experts: int,
                         budgets: list[int], start: int, chunk: int = 65536) -> list[dict]:
    """Mean share of the next token's k experts among B predicted ones, per predictor and budget B.

    Fitted on requests before ``start`` (frequencies, pair counts), scored on consecutive tokens of one
    request after it. Predictors: ``lfu`` the B most frequent experts (static); ``recent`` the current
    token's own experts, then the most frequent (recency, the baseline that matters); ``coact`` the B experts
    most co-activated with the current token's set (the reference study's CO-ACT). Ties: lowest id."""
    req = np.asarray(requests, dtype=np.int64)
    T, k = req.shape
    E = num_experts
    freq = np.bincount(req[:start].ravel(), minlength=E).astype(np.float64)
    co = coactivation_counts(req[:start], E)
    a, b = next_pairs(np.asarray(doc), np.asarray(pos), start)
    by_freq = np.argsort(-freq, kind="stable")
    rank_freq = np.empty(E, np.float64)
    rank_freq[by_freq] = np.arange(E)
    hits = {(p, B): 0 for p in PREDICTORS for B in budgets}
    for lo in range(0, len(a), chunk):
        cur, nxt = req[a[lo:lo + chunk]], req[b[lo:lo + chunk]]
        n = len(cur)
        fired = np.zeros((n, E), bool)
        np.put_along_axis(fired, cur, True, axis=1)
        target = np.zeros((n, E), bool)
        np.put_along_axis(target, nxt, True, axis=1)
        scores = {
            "lfu": np.broadcast_to(-rank_freq, (n, E)),
            # own experts first (in frequency order), then the rest by frequency
            "recent": np.where(fired, E, 0.0) - rank_freq / E,
            "coact": co[cur].sum(axis=1),
        }
        for pred, sc in scores.items():
            order = np.argsort(-sc, axis=1, kind="stable")
            hit_at = np.take_along_axis(target, order, axis=1).cumsum(axis=1)
            for B in budgets:
                hits[pred, B] += int(hit_at[:, min(B, E) - 1].sum())
    pairs = len(a)
    return [{"predictor": p, "budget": B, "pairs": pairs,
             "hit_rate": hits[p, B] / (pairs * k) if pairs else float("nan")} for p in PREDICTORS for B in budgets]


def cache_table(trace, cache_capacities: list[float], split_fraction: float) -> pl.DataFrame:  # noqa: ANN001
    """One row per (layer, capacity, policy): demand miss rate and loads per activation (prefetches
    included) on the scored part. Capacities are fractions of the expert count (at least top_k); the
    co-activation prefetcher's budget is top_k experts per request."""
    m = trace.meta
    ex = trace.experts_by_layer()
    split = trace.split_token(split_fraction)
    caps = sorted({min(m.num_experts, max(m.top_k, round(f * m.num_experts))) for f in cache_capacities})
    rows = []
    for layer in range(m.n_moe_layers):
        req = ex[:, layer, :]
        for c in caps:
            for policy in POLICIES:
                r = simulate(req, m.num_experts, c, policy, start=split, prefetch=m.top_k)
                rows.append({"layer": layer, "capacity": c, "capacity_share": c / m.num_experts,
                             "policy": policy, "miss_rate": r["miss_rate"],
                             "loads_per_activation": r["loads_per_activation"]})
    return pl.DataFrame(rows)


def prefetch_table(trace, prefetch_budgets: list[float], split_fraction: float) -> pl.DataFrame:  # noqa: ANN001
    """One row per (layer, budget, predictor): next-token prefetch hit rate on the scored part. Budgets
    are fractions of the expert count (at least 1)."""
    m = trace.meta
    ex = trace.experts_by_layer()
    split = trace.split_token(split_fraction)
    cols = trace.token_columns()
    Bs = sorted({min(m.num_experts, max(1, round(f * m.num_experts))) for f in prefetch_budgets})
    rows = []
    for layer in range(m.n_moe_layers):
        for r in next_token_hit_rates(ex[:, layer, :], cols["doc"], cols["pos"], m.num_experts, Bs, split):
            rows.append({"layer": layer, **r, "budget_share": r["budget"] / m.num_experts})
    return pl.DataFrame(rows)
