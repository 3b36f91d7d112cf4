"""Token-expert assignment from exact loads, in O(E) per iteration plus the output write.

Given ``loads [I, E]`` (row sums C*k, entries <= C), every token of an iteration gets exactly k
distinct experts and every expert exactly its load. Both pairings lay the iteration's C*k picks
out as expert runs and read them column-wise (the reference's expand-and-reshape: a run of at
most C consecutive picks covers distinct tokens), so token j takes picks j, j+C, ..., j+(k-1)C:

- ``blocked``: runs in expert-id order, tokens in slot order: faithful to the reference, and it
  gives slot 0 the first experts every iteration (artificial co-activation).
- ``shuffled``: runs in a fresh random order and tokens in a uniformly random order per
  iteration. Each token's set is then a randomised systematic sample with inclusion probability
  load/C per expert (Hartley-Rao), so the pairing is random while both margins stay exact.

Rows come out sorted by expert id, as the trace contract wants for equal weights (1/k).

Speed notes (``benchmarks/bench_synthetic.py``): the picks are built in [k, W] column tiles that
stay in cache; short runs are written as one fixed 16-wide store (the spill is overwritten by the
next run), each column is sorted by a sorting network vectorised across columns, and the token
permutation is applied inside the tile (inside-out Fisher-Yates) or, when an iteration spans
several tiles, by Rao-Sandelius: iid bucket labels, then a shuffle of each cache-sized bucket.
Loop indices are unsigned where they are not plain ``range`` counters: numba's negative-index
wrap-around otherwise keeps LLVM from vectorising the fills.
"""

from __future__ import annotations

import numba
import numpy as np

from moelab.synthetic import PAIRINGS  # the names live in the light package module (the config check)

TILE = 4096  # columns per tile: [k, TILE] u16 plus a token buffer fit in L2. Part of the byte output.
_U64 = np.uint64
_M32 = np.uint64(0xFFFFFFFF)
_SPILL = 16  # width of the fixed store used for short runs


@numba.njit(cache=True, inline="always")
def _splitmix64(state):
    state = state + _U64(0x9E3779B97F4A7C15)
    z = state
    z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
    return state, z ^ (z >> _U64(31))


@numba.njit(cache=True, inline="always")
def _below(x, hi, n):
    """A draw in [0, n) from 32 random bits (the high or low half of x): Lemire, no division."""
    bits = (x >> _U64(32)) if hi else (x & _M32)
    return np.int64((bits * _U64(n)) >> _U64(32))


@numba.njit(cache=True, inline="always")
def _shuffle_ints(a, n, state):
    """Fisher-Yates on a[:n], two draws per 64-bit word."""
    x = _U64(0)
    for j in range(n - 1, 0, -1):
        odd = (n - 1 - j) & 1
        if odd == 0:
            state, x = _splitmix64(state)
        m = _below(x, odd == 0, j + 1)
        t = a[j]
        a[j] = a[m]
        a[m] = t
    return state


@numba.njit(cache=True, inline="always")
def _inside_out(perm, n, state):
    """perm[:n] = a uniformly random permutation of 0..n-1 (inside-out Fisher-Yates)."""
    x = _U64(0)
    for t in range(n):
        if t & 1 == 0:
            state, x = _splitmix64(state)
        m = _below(x, t & 1 == 0, t + 1)
        perm[t] = perm[m]
        perm[m] = t
    return state


@numba.njit(cache=True, inline="always")
def _fill_run(a, q, o, n, v):
    """a[q, o:o+n] = v; row q has _SPILL slots of slack after every position it is filled up to.
    (No row view: a numba view costs a reference-count round trip per run.)"""
    o64 = _U64(o)
    if n <= _SPILL:
        for x in range(_SPILL):
            a[q, o64 + _U64(x)] = v
    else:
        for x in range(n):
            a[q, o64 + _U64(x)] = v


@numba.njit(cache=True)
def _sort_columns(kT, w):
    """Sort the first w columns of the [k, W] tile (odd-even transposition, vectorised across columns)."""
    k = kT.shape[0]
    for rnd in range(k):
        for q in range(rnd & 1, k - 1, 2):
            for j in range(w):
                a = kT[q, j]
                b = kT[q + 1, j]
                kT[q, j] = min(a, b)
                kT[q + 1, j] = max(a, b)


@numba.njit(cache=True)
def _shuffle_rows(outu, lo, n, buf, state):
    """Uniform shuffle of rows outu[lo:lo+n]: inside-out into buf (sequential reads, random
    accesses in cache), then written back in order."""
    U = outu.shape[1]
    x = _U64(0)
    for t in range(n):
        if t & 1 == 0:
            state, x = _splitmix64(state)
        m = _below(x, t & 1 == 0, t + 1)
        for u in range(U):
            buf[t, u] = buf[m, u]
            buf[m, u] = outu[lo + t, u]
    for t in range(n):
        for u in range(U):
            outu[lo + t, u] = buf[t, u]
    return state


@numba.njit(cache=True)
def _tile_out(kT, w, base, c0, shuffle, buckets, out, lab, cursor, perm, state):
    """Write the first w columns of a filled [k, W] tile (picks c0.. of every row) as tokens."""
    k = kT.shape[0]
    if not shuffle:  # runs in id order: every column is already sorted
        for j in range(w):
            for q in range(k):
                out[base + c0 + j, q] = kT[q, j]
        return state
    _sort_columns(kT, w)
    if buckets:
        for j in range(w):
            b = lab[c0 + j]
            d = base + cursor[b]
            cursor[b] += 1
            for q in range(k):
                out[d, q] = kT[q, j]
    else:
        state = _inside_out(perm, w, state)
        for t in range(w):
            p = perm[t]
            for q in range(k):
                out[base + t, q] = kT[q, p]
    return state


@numba.njit(cache=True)
def _assign_tiles(loads, C, seed, shuffle, out, outu):
    """out ``[I*C, k]`` u16 (may be a strided view), outu the same memory in wider units per row."""
    I, E = loads.shape
    k = out.shape[1]
    W = min(C, TILE)
    nt = (C + W - 1) // W
    runs = np.empty(E, np.int32)  # experts with a nonzero load, in run order
    runend = np.empty(E + 1, np.int64)
    ptr = np.empty(k, np.int64)
    kT = np.empty((k, W + _SPILL), np.uint16)
    perm = np.empty(W, np.int32)
    buckets = shuffle and nt > 1
    lab = np.empty(C if buckets else 0, np.int32)
    cursor = np.empty(nt + 1, np.int64)
    buf = np.empty((2 * W if buckets else 0, outu.shape[1]), outu.dtype)
    state = _U64(seed)
    for i in range(I):
        m = 0
        for e in range(E):  # branch-free compaction: most loads are small and many are zero
            runs[m] = e
            m += loads[i, e] > 0
        if shuffle:
            state = _shuffle_ints(runs, m, state)
        base = i * C
        if nt == 1:  # one tile: lay the runs out in one pass; row q holds picks q*C .. q*C + C
            q = 0
            c = 0
            for r in range(m):
                e = runs[r]
                n = loads[i, e]
                v = np.uint16(e)
                if c + n < C:
                    _fill_run(kT, q, c, n, v)
                    c += n
                else:  # the run ends row q and spills into row q + 1
                    _fill_run(kT, q, c, C - c, v)
                    n -= C - c
                    q += 1
                    c = n
                    if n > 0:
                        _fill_run(kT, q, 0, n, v)
            state = _tile_out(kT, C, base, 0, shuffle, False, out, lab, cursor, perm, state)
            continue
        if buckets:  # Rao-Sandelius: iid bucket labels; bucket b fills out rows cursor[b]..
            for b in range(nt + 1):
                cursor[b] = 0
            x = _U64(0)
            for j in range(C):
                if j & 1 == 0:
                    state, x = _splitmix64(state)
                b = _below(x, j & 1 == 0, nt)
                lab[j] = b
                cursor[b + 1] += 1
            biggest = 0
            for b in range(nt):
                biggest = max(biggest, cursor[b + 1])
                cursor[b + 1] += cursor[b]
            if biggest > buf.shape[0]:
                buf = np.empty((biggest, outu.shape[1]), outu.dtype)
        pos = 0
        for r in range(m):
            pos += loads[i, runs[r]]
            runend[r] = pos
        runend[m] = pos + 1  # sentinel
        r = 0
        for q in range(k):  # the run holding pick q*C
            while runend[r] <= q * C:
                r += 1
            ptr[q] = r
        for c0 in range(0, C, W):
            w = min(W, C - c0)
            for q in range(k):  # row q of the tile holds picks q*C + c0 .. + w
                p = q * C + c0
                end = p + w
                r = ptr[q]
                while p < end:
                    stop = min(end, runend[r])
                    _fill_run(kT, q, p - q * C - c0, stop - p, np.uint16(runs[r]))
                    p = stop
                    if p == runend[r]:
                        r += 1
                ptr[q] = r
            state = _tile_out(kT, w, base, c0, shuffle, buckets, out, lab, cursor, perm, state)
        if buckets:  # after the scatter, cursor[b] is the end of bucket b
            lo = 0
            for b in range(nt):
                state = _shuffle_rows(outu, base + lo, cursor[b] - lo, buf, state)
                lo = cursor[b]


@numba.njit(cache=True)
def _blocked_kT(loads, C, out):
    """out ``[k, I*C]``: the reference layout (pick q of iteration i sits at row q // C)."""
    I, E = loads.shape
    T = out.shape[1]
    runs = np.empty(E, np.int32)
    for i in range(I):
        m = 0
        for e in range(E):
            runs[m] = e
            m += loads[i, e] > 0
        r = 0
        c = 0
        for j in range(m):
            e = runs[j]
            n = loads[i, e]
            while n > 0:
                take = min(n, C - c)
                col = i * C + c
                if col + take + _SPILL <= T:  # the spill stays in this row, where later runs overwrite it
                    _fill_run(out, r, col, take, np.uint16(e))
                else:
                    o64 = _U64(col)
                    for x in range(take):
                        out[r, o64 + _U64(x)] = np.uint16(e)
                c += take
                n -= take
                if c == C:
                    c = 0
                    r += 1


@numba.njit(cache=True)
def _scan_loads(loads, C, total):
    """(iteration, code) of the first bad row: code 1 = an entry outside [0, C], 2 = wrong sum."""
    I, E = loads.shape
    for i in range(I):
        s = 0
        lo = 0
        hi = 0
        for e in range(E):
            v = loads[i, e]
            s += v
            lo = min(lo, v)
            hi = max(hi, v)
        if lo < 0 or hi > C:
            return i, 1
        if s != total:
            return i, 2
    return -1, 0


def check_loads(loads: np.ndarray, concurrency: int, top_k: int) -> None:
    """Raise ValueError unless every row sums to C*k with entries in [0, C]."""
    if loads.ndim != 2:
        raise ValueError(f"loads must be [iterations, experts], got shape {loads.shape}")
    if not np.issubdtype(loads.dtype, np.integer):
        raise ValueError(f"loads must be integers, got {loads.dtype}")
    i, code = _scan_loads(np.ascontiguousarray(loads).astype(np.int64, copy=False), concurrency,
                          concurrency * top_k)
    if code == 1:
        raise ValueError(f"iteration {i}: loads must lie in [0, concurrency={concurrency}]")
    if code == 2:
        raise ValueError(f"iteration {i}: loads sum to {loads[i].sum()}, expected "
                         f"concurrency*top_k={concurrency * top_k}")


def _int_loads(loads: np.ndarray) -> np.ndarray:
    # int32 and int64 are both compiled; anything else (u8, i16, ...) becomes int64 once.
    if loads.dtype in (np.int32, np.int64) and loads.flags.c_contiguous:
        return loads
    return np.ascontiguousarray(loads, np.int64)


def _row_units(out: np.ndarray) -> np.ndarray:
    """The rows of ``out [T, k]`` u16 viewed as wider words (u64, u32 or u16) for whole-row moves."""
    row_bytes = out.shape[1] * 2
    for unit in (np.uint64, np.uint32):
        size = np.dtype(unit).itemsize
        if (row_bytes % size == 0 and out.strides[1] == 2 and out.strides[0] % size == 0
                and out.ctypes.data % size == 0):
            return out.view(unit)
    return out


def assign_blocked_kT(loads: np.ndarray, concurrency: int, top_k: int) -> np.ndarray:
    """The reference's layout ``[k, I*C]`` u16 (column = token), blocked pairing."""
    check_loads(loads, concurrency, top_k)
    out = np.empty((top_k, loads.shape[0] * concurrency), np.uint16)
    _blocked_kT(_int_loads(loads), concurrency, out)
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
    _assign_tiles(_int_loads(loads), concurrency, seed, shuffle, out, _row_units(out))
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
