import itertools

import numpy as np
import pytest

from moelab import cache


def brute_force(req, E, C, policy, start=0):
    """Straightforward re-statement of the pinned semantics (lists, no tricks)."""
    resident, order, misses = [], [], 0  # order: least recent first
    freq = np.bincount(np.asarray(req[:start]).ravel(), minlength=E) if start else np.zeros(E)
    T = len(req)
    for t in range(T):
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
                if policy == "lru":
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
    return misses


@pytest.mark.parametrize("seed,E,k,C", [(s, E, k, C) for s in range(6) for E, k, C in ((6, 2, 3), (8, 3, 4), (10, 2, 5))])
def test_agrees_with_brute_force_and_belady_never_loses(seed, E, k, C):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(E, 0.5))
    req = np.array([rng.choice(E, size=k, replace=False, p=p) for _ in range(60)])
    got = {pol: cache.simulate(req, E, C, pol, start=20)["misses"] for pol in cache.POLICIES}
    for pol in cache.POLICIES:
        assert got[pol] == brute_force(req, E, C, pol, start=20), pol
    assert got["belady"] <= got["lru"] and got["belady"] <= got["lfu"]


def test_full_capacity_misses_only_cold_starts():
    req = np.array(list(itertools.permutations(range(4), 2)))
    r = cache.simulate(req, 4, 4, "lru")
    assert r["misses"] == 4


def test_bad_capacity_is_refused():
    with pytest.raises(ValueError, match="capacity=1"):
        cache.simulate(np.zeros((3, 2), int) + [[0, 1]], 4, 1, "lru")
    with pytest.raises(ValueError, match="policy"):
        cache.simulate(np.array([[0, 1]]), 4, 2, "fifo")
