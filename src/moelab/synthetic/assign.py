"""Token-expert assignment from exact loads, in O(E) per iteration plus the output write.

Given ``loads [I, E]`` (row sums C*k, entries <= C), every token of an iteration gets exactly k
distinct experts and every expert exactly its load. Both pairings lay the iteration's C*k picks
out as expert runs and read them column-wise (the reference's expand-and-reshape: a run of at
most C consecutive picks covers distinct tokens):

- ``blocked``: experts in id order, tokens in slot order: faithful to the reference, and it gives
  slot 0 the first experts every iteration (artificial co-activation).
- ``shuffled``: a fresh random expert order and a random token permutation per iteration. Each
  token's set is then a randomised systematic sample with inclusion probability load/C per
  expert (Hartley-Rao), so the pairing is random while both margins stay exact.

Rows come out sorted by expert id, as the trace contract wants for equal weights (1/k).
"""

from __future__ import annotations

import numba
import numpy as np

PAIRINGS = ("blocked", "shuffled")
_U64 = np.uint64


@numba.njit(cache=True, inline="always")
def _splitmix64(state):
    state = state + _U64(0x9E3779B97F4A7C15)
    z = state
    z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
    return state, z ^ (z >> _U64(31))


@numba.njit(cache=True)
def _blocked_kT(loads, concurrency, out):
    """out ``[k, I*C]``: the reference layout (pick q of iteration i sits at row q // C)."""
    I, E = loads.shape
    C = concurrency
    for i in range(I):
        q = 0
        base = i * C
        for e in range(E):
            left = loads[i, e]
            while left > 0:
                r = q // C
                c = q - r * C
                n = min(left, C - c)
                out[r, base + c : base + c + n] = e
                q += n
                left -= n


@numba.njit(cache=True)
def _runs_to_tokens(loads, concurrency, seed, shuffle, out):
    """out ``[I*C, k]`` (may be a strided view): row per token, experts ascending."""
    I, E = loads.shape
    C = concurrency
    k = out.shape[1]
    order = np.empty(E, np.int64)
    start = np.empty(E, np.int64)
    tok = np.empty(C, np.int64)
    fill = np.empty(C, np.uint16)  # a small type (k <= E <= 65535): the fill loop sweeps it k times
    # Columns are filled in column order (sequential writes), then each whole row moves to its token:
    # one random 2k-byte move per token instead of k random 2-byte writes (large C is cache-miss bound).
    rows = np.empty((C, k), out.dtype)
    state = _U64(seed)
    for i in range(I):
        for e in range(E):
            order[e] = e
        for j in range(C):
            tok[j] = j
        if shuffle:
            for e in range(E - 1, 0, -1):  # Fisher-Yates on the expert order
                state, x = _splitmix64(state)
                m = np.int64(((x >> _U64(32)) * _U64(e + 1)) >> _U64(32))  # Lemire, no division
                order[e], order[m] = order[m], order[e]
            for j in range(C - 1, 0, -1):  # and on the tokens that read the columns
                state, x = _splitmix64(state)
                m = np.int64(((x >> _U64(32)) * _U64(j + 1)) >> _U64(32))
                tok[j], tok[m] = tok[m], tok[j]
        pos = 0
        for m in range(E):
            e = order[m]
            start[e] = pos
            pos += loads[i, e]
        for j in range(C):
            fill[j] = 0
        base = i * C
        for e in range(E):  # ascending ids, so every token's list comes out sorted
            j = start[e] % C
            for _ in range(loads[i, e]):
                rows[j, fill[j]] = e
                fill[j] += 1
                j += 1
                if j == C:
                    j = 0
        for j in range(C):
            t = base + tok[j]
            for q in range(k):
                out[t, q] = rows[j, q]


def check_loads(loads: np.ndarray, concurrency: int, top_k: int) -> None:
    """Raise ValueError unless every row sums to C*k with entries in [0, C]."""
    if loads.ndim != 2:
        raise ValueError(f"loads must be [iterations, experts], got shape {loads.shape}")
    if (loads < 0).any() or (loads > concurrency).any():
        raise ValueError(f"loads must lie in [0, concurrency={concurrency}]")
    bad = np.flatnonzero(loads.sum(axis=1) != concurrency * top_k)
    if bad.size:
        raise ValueError(f"iteration {bad[0]}: loads sum to {loads[bad[0]].sum()}, expected "
                         f"concurrency*top_k={concurrency * top_k}")


def assign_blocked_kT(loads: np.ndarray, concurrency: int, top_k: int) -> np.ndarray:
    """The reference's layout ``[k, I*C]`` u16 (column = token), blocked pairing."""
    check_loads(loads, concurrency, top_k)
    out = np.empty((top_k, loads.shape[0] * concurrency), np.uint16)
    _blocked_kT(np.ascontiguousarray(loads, np.int32), concurrency, out)
    return out


def assign(loads: np.ndarray, concurrency: int, top_k: int, pairing: str,
           rng: np.random.Generator | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """Token-major assignment ``[I*C, k]`` u16, rows ascending. ``out`` may be a strided view
    (e.g. one layer of a ``[tokens, layers, k]`` array) to write the trace layout directly."""
    if pairing not in PAIRINGS:
        raise ValueError(f"pairing={pairing!r}: expected one of {PAIRINGS}")
    check_loads(loads, concurrency, top_k)
    shape = (loads.shape[0] * concurrency, top_k)
    if out is None:
        out = np.empty(shape, np.uint16)
    elif out.shape != shape or out.dtype != np.uint16:
        raise ValueError(f"out must be u16 {shape}, got {out.dtype} {out.shape}")
    shuffle = pairing == "shuffled"
    if shuffle and rng is None:
        raise ValueError("pairing='shuffled' needs an rng")
    seed = int(rng.integers(0, 2**63)) if shuffle else 0
    _runs_to_tokens(np.ascontiguousarray(loads, np.int32), concurrency, seed, shuffle, out)
    return out


def assign_token_loop(loads: np.ndarray, concurrency: int, top_k: int) -> np.ndarray:
    """Token-by-token greedy (the reference's naive approach, made always feasible: each token
    takes the k experts with most remaining quota). Slow by design; the benchmark's baseline."""
    check_loads(loads, concurrency, top_k)
    I, E = loads.shape
    out = np.empty((I * concurrency, top_k), np.uint16)
    for i in range(I):
        quota = loads[i].astype(np.int64).copy()
        for j in range(concurrency):
            top = np.argpartition(-quota, top_k - 1)[:top_k]
            quota[top] -= 1
            out[i * concurrency + j] = np.sort(top)
    return out
