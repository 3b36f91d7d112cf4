"""Expert cache simulation for one MoE layer, with the semantics pinned in anchors.md.

A request is one token's k experts in one layer; all must be resident. Each missing one is a
demand load. An expert of the current request is never evicted to serve that same request
(so ``capacity >= k``). Policies differ only in whom they evict:

- ``lru``: least recently used; the request's hits are refreshed before its misses load.
- ``lfu``: static LFU: the lowest frequency fitted on the requests before ``start`` (ties: the
  higher id goes first); frequencies never change while scoring.
- ``belady``: the resident whose next use is farthest (never again = infinitely far; ties:
  lowest id). Offline and optimal: the lower bound of any eviction policy.

Misses are counted on requests ``t >= start`` only; earlier requests warm the cache.
"""

from __future__ import annotations

import numba as nb
import numpy as np

POLICIES = ("lru", "lfu", "belady")
_NEVER = np.iinfo(np.int64).max


@nb.njit(cache=True)
def _lru(req: np.ndarray, E: int, C: int, start: int) -> int:  # pragma: no cover - numba
    # doubly linked recency list over experts; head = most recent, tail = eviction candidate
    prev = np.full(E, -1, np.int64)
    nxt = np.full(E, -1, np.int64)
    resident = np.zeros(E, np.bool_)
    head, tail, size, misses = -1, -1, 0, 0
    T, k = req.shape
    for t in range(T):
        for phase in range(2):  # 0: refresh hits, 1: load misses
            for j in range(k):
                e = req[t, j]
                if resident[e] != (phase == 0):
                    continue
                if phase == 0:  # unlink e, then push to front
                    if e == head:
                        continue
                    p, q = prev[e], nxt[e]
                    nxt[p] = q
                    if q >= 0:
                        prev[q] = p
                    else:
                        tail = p
                else:
                    if t >= start:
                        misses += 1
                    if size == C:  # evict the tail: it is not in this request (C >= k)
                        v = tail
                        tail = prev[v]
                        nxt[tail] = -1
                        resident[v] = False
                    else:
                        size += 1
                    resident[e] = True
                    if tail < 0:
                        tail = e
                prev[e] = -1
                nxt[e] = head
                if head >= 0:
                    prev[head] = e
                head = e
    return misses


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


def simulate(requests: np.ndarray, num_experts: int, capacity: int, policy: str, start: int = 0) -> dict:
    """Demand misses of a capacity-``capacity`` cache over ``requests`` ``[T, k]`` (one layer).

    Returns misses, scored activations and the miss rate (misses per scored activation)."""
    req = np.ascontiguousarray(requests, dtype=np.int64)
    T, k = req.shape
    if policy not in POLICIES:
        raise ValueError(f"policy={policy!r}: expected one of {POLICIES}")
    if not k <= capacity <= num_experts:
        raise ValueError(f"capacity={capacity} must lie in [top_k={k}, num_experts={num_experts}]")
    if not 0 <= start <= T:
        raise ValueError(f"start={start} outside [0, {T}]")
    if policy == "lru":
        misses = _lru(req, num_experts, capacity, start)
    else:
        freq = np.bincount(req[:start].ravel(), minlength=num_experts).astype(np.float64)
        misses = _priority_cache(req, num_experts, capacity, start, policy == "belady", freq)
    scored = (T - start) * k
    return {"policy": policy, "capacity": capacity, "misses": int(misses), "activations": int(scored),
            "miss_rate": misses / scored if scored else float("nan")}
