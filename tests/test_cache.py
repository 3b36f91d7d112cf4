import itertools

import numpy as np
import pytest

from moelab import cache


def brute_force(req, E, C, policy, start=0, prefetch=0):
    """Straightforward re-statement of the pinned semantics (lists, no tricks). Returns (misses, prefetch loads)."""
    resident, order, misses, loads = [], [], 0, 0  # order: least recent first
    freq = np.bincount(np.asarray(req[:start]).ravel(), minlength=E) if start else np.zeros(E)
    pairs = {(a, b): sum(a in r and b in r for r in req[:start]) for a in range(E) for b in range(E) if a != b}
    T = len(req)
    for t in range(T):
        if policy == "coact" and t > 0:
            prev = list(req[t - 1])
            score = {e: sum(pairs[f, e] for f in prev) for e in range(E) if e not in prev}
            for e in sorted(score, key=lambda e: (-score[e], e))[:prefetch]:
                if score[e] == 0:
                    break
                if e in resident:
                    continue
                loads += t >= start
                if len(resident) == C:
                    victim = order[0]
                    resident.remove(victim)
                    order.remove(victim)
                resident.append(e)
                order.append(e)
        cur = list(req[t])
        for e in cur:  # LRU refreshes hits before loading misses
            if e in resident:
                order.remove(e)
                order.append(e)
        for e in cur:
            if e in resident:
                continue
            misses += t >= start
            if len(resident) == C:
                cands = [v for v in resident if v not in cur]
                if policy in ("lru", "coact"):
                    victim = next(v for v in order if v not in cur)
                elif policy == "lfu":
                    victim = min(cands, key=lambda v: (freq[v], -v))
                else:
                    def nxt(v):
                        return next((u for u in range(t + 1, T) if v in req[u]), float("inf"))
                    victim = min(cands, key=lambda v: (-nxt(v), v))
                resident.remove(victim)
                order.remove(victim)
            resident.append(e)
            order.append(e)
    return misses, loads


@pytest.mark.parametrize("seed,E,k,C", [(s, E, k, C) for s in range(6) for E, k, C in ((6, 2, 3), (8, 3, 4), (10, 2, 5))])
def test_agrees_with_brute_force_and_belady_never_loses(seed, E, k, C):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(E, 0.5))
    req = np.array([rng.choice(E, size=k, replace=False, p=p) for _ in range(60)])
    got = {pol: cache.simulate(req, E, C, pol, start=20, prefetch=k) for pol in cache.POLICIES}
    for pol in cache.POLICIES:
        assert (got[pol]["misses"], got[pol]["prefetch_loads"]) == brute_force(req, E, C, pol, 20, k), pol
    assert all(got["belady"]["misses"] <= got[pol]["misses"] for pol in cache.POLICIES)
    assert got["coact"]["loads_per_activation"] >= got["coact"]["miss_rate"]


def test_full_capacity_misses_only_cold_starts():
    req = np.array(list(itertools.permutations(range(4), 2)))
    r = cache.simulate(req, 4, 4, "lru")
    assert r["misses"] == 4


def test_bad_capacity_is_refused():
    with pytest.raises(ValueError, match="capacity=1"):
        cache.simulate(np.zeros((3, 2), int) + [[0, 1]], 4, 1, "lru")
    with pytest.raises(ValueError, match="policy"):
        cache.simulate(np.array([[0, 1]]), 4, 2, "fifo")


def test_coactivation_prefetch_pays_only_when_the_next_request_follows_from_this_one():
    rng = np.random.default_rng(3)
    E, k, T = 32, 4, 4000
    group = rng.integers(0, 4, T)
    runs = np.repeat(rng.integers(0, 4, T // 8), 8)  # the same group for 8 requests in a row
    for groups, helps in ((group, False), (runs, True)):
        req = np.stack([np.sort(rng.choice(8, k, replace=False)) + 8 * g for g in groups])
        lru = cache.simulate(req, E, 8, "lru", start=T // 2)
        co = cache.simulate(req, E, 8, "coact", start=T // 2, prefetch=k)
        if helps:
            assert co["miss_rate"] < 0.6 * lru["miss_rate"]
        else:  # the next request is unrelated: same misses, and the prefetches are pure extra bandwidth
            assert abs(co["miss_rate"] - lru["miss_rate"]) < 0.03
            assert co["loads_per_activation"] > 1.7 * lru["miss_rate"]


def test_next_token_hit_rates_on_hand_made_pairs():
    # two requests, interleaved in the stream: A uses {0,1} then {2,3}; B uses {4,5} then {4,5}
    req = np.array([[0, 1], [4, 5], [2, 3], [4, 5],   # fitted part
                    [0, 1], [4, 5], [2, 3], [4, 5]])  # scored part
    doc = np.array([0, 1, 0, 1, 2, 3, 2, 3])
    pos = np.array([0, 0, 1, 1, 0, 0, 1, 1])
    rows = {(r["predictor"], r["budget"]): r for r in cache.next_token_hit_rates(req, doc, pos, 6, [2, 4], start=4)}
    assert rows["lfu", 2]["pairs"] == 2
    # frequencies: 4 and 5 twice, 0-3 once. LFU@2 = {4,5}: hits B's next token only -> 2 of 4
    assert rows["lfu", 2]["hit_rate"] == 0.5
    # recency@2 = the current set: A's next ({2,3}) missed, B's next ({4,5}) hit
    assert rows["recent", 2]["hit_rate"] == 0.5
    # co-activation: {0,1} never co-fired with {2,3} in one request -> scores 0 except each other
    assert rows["coact", 2]["hit_rate"] == 0.5
    assert rows["lfu", 4]["hit_rate"] == 0.5  # {4,5,0,1}: B's next hit, A's next ({2,3}) missed
    assert rows["recent", 4]["hit_rate"] == 0.5  # {0,1,4,5} for A, {4,5,0,1} for B


def test_next_pairs_skip_request_boundaries_and_the_fitted_part():
    doc = np.array([0, 0, 1, 0, 1, 1])
    pos = np.array([0, 1, 0, 2, 1, 2])
    a, b = cache.next_pairs(doc, pos, start=1)
    assert sorted(zip(a.tolist(), b.tolist())) == [(1, 3), (2, 4), (4, 5)]
