"""The serving stream: continuous batching replayed as token positions (``docs/design.md``, "Iterations").

``concurrency`` slots are active from iteration 0; each iteration takes the next token of every
active request; a finished request is replaced at once by the next one in the given order. Token
``t = iteration * concurrency + slot`` so ``iteration = t // concurrency`` everywhere.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Stream:
    """Per-token arrays in stream order, all ``[iterations * concurrency]``.

    request: index into the request list given to :func:`schedule`; pos: token position in the
    request; length: the request's full length (it may be cut off by the end of the stream).
    """

    concurrency: int
    iterations: int
    request: np.ndarray
    pos: np.ndarray
    length: np.ndarray

    @property
    def n_tokens(self) -> int:
        return self.concurrency * self.iterations

    def is_test(self) -> np.ndarray:
        """Second half of each request (by its full length) is the test split."""
        return 2 * self.pos >= self.length


def schedule(lengths: np.ndarray, concurrency: int, iterations: int | None = None) -> Stream:
    """Replay the scheduler over requests of the given lengths, taken in order.

    lengths: ``[requests]`` positive ints. With ``iterations=None`` the stream ends at its last
    full iteration (every slot busy); otherwise exactly ``iterations`` are produced and a
    ValueError says so if the requests run out first.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if concurrency < 1:
        raise ValueError(f"concurrency={concurrency} must be >= 1")
    if lengths.ndim != 1 or (lengths < 1).any():
        raise ValueError("request lengths must be a 1-D array of positive integers")
    if lengths.size < concurrency:
        raise ValueError(f"{lengths.size} requests cannot fill concurrency={concurrency} slots")
    # Event simulation over requests (not tokens): each slot's free time is a heap key.
    # Slots freeing at the same iteration are refilled in slot order, so ties are deterministic.
    n = lengths.size
    start = np.empty(n, np.int64)
    slot_of = np.empty(n, np.int64)
    start[:concurrency] = 0
    slot_of[:concurrency] = np.arange(concurrency)
    free = lengths[:concurrency].copy()  # iteration at which each slot frees
    heap = [(int(free[s]), s) for s in range(concurrency)]
    heapq.heapify(heap)
    horizon = np.iinfo(np.int64).max if iterations is None else iterations
    r = concurrency
    while r < n:
        when, s = heapq.heappop(heap)
        if when >= horizon:
            heapq.heappush(heap, (when, s))
            break
        start[r], slot_of[r] = when, s
        heapq.heappush(heap, (when + int(lengths[r]), s))
        r += 1
    n_used = r
    if r == n:  # requests ran out: the last full iteration is just before the first idle slot
        idle_at = min(w for w, _ in heap)
        if iterations is None:
            iterations = idle_at
        elif idle_at < iterations:
            raise ValueError(f"{n} requests fill only {idle_at} full iterations, {iterations} asked for")
    if iterations < 1:
        raise ValueError("the requests do not fill a single full iteration")
    start, slot_of, lens = start[:n_used], slot_of[:n_used], lengths[:n_used]
    # Tokens of each request: iterations start..start+len-1 (clipped), in slot slot_of.
    end = np.minimum(start + lens, iterations)
    keep = end > start
    start, slot_of, lens, end, idx = start[keep], slot_of[keep], lens[keep], end[keep], np.flatnonzero(keep)
    counts = end - start
    req = np.repeat(idx, counts)
    offs = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    it = np.repeat(start, counts) + offs
    t = it * concurrency + np.repeat(slot_of, counts)
    T = iterations * concurrency
    if t.size != T:
        raise AssertionError(f"scheduler produced {t.size} tokens for {T} slots")  # internal invariant
    order = np.empty(T, np.int64)
    order[t] = np.arange(T)
    return Stream(
        concurrency=concurrency,
        iterations=iterations,
        request=req[order],
        pos=offs[order],
        length=np.repeat(lens, counts)[order],
    )


def synthetic_lengths(rng: np.random.Generator, n: int, min_len: int, max_len: int) -> np.ndarray:
    """Pseudo-request lengths, uniform on [min_len, max_len]: staggered so slots do not turn over
    in lockstep."""
    if not 1 <= min_len <= max_len:
        raise ValueError(f"request lengths need 1 <= min ({min_len}) <= max ({max_len})")
    return rng.integers(min_len, max_len + 1, size=n)


def synthetic_stream(rng: np.random.Generator, concurrency: int, iterations: int,
                     min_len: int, max_len: int) -> Stream:
    """A stream of ``iterations`` full iterations over pseudo-requests."""
    mean = (min_len + max_len) / 2
    n = int(concurrency * (iterations / mean + 2) * 1.2) + concurrency + 16
    return schedule(synthetic_lengths(rng, n, min_len, max_len), concurrency, iterations)
