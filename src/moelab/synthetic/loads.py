"""Per-iteration expert loads: capped profiles, exact-total draws, balanced and imbalanced shapes.

Every draw returns ``loads [iterations, E]`` with each row summing to exactly ``C * k`` and no
entry above ``C`` (an expert takes each token at most once), so an assignment always exists.
"""

from __future__ import annotations

import numpy as np


def cap_profile(p: np.ndarray, top_k: int) -> np.ndarray:
    """Inclusion probabilities ``pi = min(1, c * p)`` with ``sum(pi) == top_k`` per row.

    p: ``[..., E]`` non-negative popularity (rows need >= top_k positive entries).
    Water-filling by fixed point: experts that would exceed 1 are pinned at 1, the rest rescaled.
    """
    p = np.asarray(p, dtype=np.float64)
    E = p.shape[-1]
    if top_k > E:
        raise ValueError(f"top_k={top_k} exceeds num_experts={E}")
    if ((p > 0).sum(axis=-1) < top_k).any():
        raise ValueError(f"a profile has fewer than top_k={top_k} experts with positive popularity")
    pinned = np.zeros(p.shape, dtype=bool)
    for _ in range(E + 1):
        free_mass = np.where(pinned, 0.0, p).sum(axis=-1, keepdims=True)
        need = top_k - pinned.sum(axis=-1, keepdims=True)
        c = np.divide(need, free_mass, out=np.zeros_like(free_mass), where=free_mass > 0)
        new = pinned | (c * p >= 1.0)
        if (new == pinned).all():
            break
        pinned = new
    return np.where(pinned, 1.0, np.minimum(1.0, c * p))


def _spill_over_cap(rng: np.random.Generator | None, loads: np.ndarray, cap: int,
                    weights: np.ndarray) -> np.ndarray:
    """Move load above ``cap`` to experts with room; row totals are kept.

    With an rng the moved picks are drawn in proportion to ``weights`` among experts with room;
    without one (deterministic), one pick at a time goes to the expert with most room (lower id
    first). Rows need total <= E * cap, which C*k <= E*C guarantees.
    """
    loads = loads.copy()
    for _ in range(loads.shape[-1] + 1):
        excess = np.maximum(loads - cap, 0).sum(axis=-1)
        if not excess.any():
            return loads
        loads = np.minimum(loads, cap)
        rows = np.flatnonzero(excess)
        if rng is not None:
            w = np.where(loads[rows] < cap, weights[rows] + 1e-12, 0.0)
            loads[rows] += rng.multinomial(excess[rows], w / w.sum(axis=-1, keepdims=True))
            continue
        for r in rows:
            for _ in range(int(excess[r])):
                e = int(np.argmax(cap - loads[r]))
                loads[r, e] += 1
    raise AssertionError("over-cap load could not be spread")


def draw_multinomial(rng: np.random.Generator, pi: np.ndarray, concurrency: int, top_k: int) -> np.ndarray:
    """Loads ``[I, E]``: multinomial(C*k, pi/k) per row, over-cap picks re-drawn among experts with
    room. pi: ``[I, E]`` capped inclusion probabilities (rows sum to k)."""
    loads = rng.multinomial(concurrency * top_k, pi / pi.sum(axis=-1, keepdims=True))
    return _spill_over_cap(rng, loads.astype(np.int64), concurrency, pi)


def draw_systematic(rng: np.random.Generator, pi: np.ndarray, concurrency: int, top_k: int) -> np.ndarray:
    """Loads ``[I, E]`` by systematic sampling: each load is floor or ceil of ``C * pi`` with the
    right probabilities (one uniform per row). Low variance; totals exact; never above C."""
    I, E = pi.shape
    cum = np.cumsum(concurrency * pi, axis=1)
    cum[:, -1] = concurrency * top_k  # exact total despite float rounding
    u = rng.random((I, 1))
    marks = np.floor(cum + u).astype(np.int64)
    loads = np.diff(marks, axis=1, prepend=0)
    return _spill_over_cap(None, loads, concurrency, pi)


def draw_loads(rng: np.random.Generator, pi: np.ndarray, concurrency: int, top_k: int,
               method: str) -> np.ndarray:
    if method == "multinomial":
        return draw_multinomial(rng, pi, concurrency, top_k)
    if method == "systematic":
        return draw_systematic(rng, pi, concurrency, top_k)
    raise ValueError(f"draw={method!r}: expected 'multinomial' or 'systematic'")


def exponential_profile(num_experts: int, imbalance_factor: float) -> np.ndarray:
    """Popularity ``[E]`` decaying geometrically from expert 0, calibrated so that
    max/mean = E * p[0] equals ``imbalance_factor`` exactly (bisection on the ratio)."""
    E, f = num_experts, float(imbalance_factor)
    if not 1.0 <= f <= E:
        raise ValueError(f"imbalance_factor={f} must lie in [1, num_experts={E}]")
    if f == 1.0:
        return np.full(E, 1.0 / E)
    j = np.arange(E)
    lo, hi = 0.0, 1.0  # E / sum(r^j) falls from E (r=0) to 1 (r=1)
    for _ in range(200):
        r = (lo + hi) / 2
        if E / np.sum(r**j) > f:
            lo = r
        else:
            hi = r
    p = ((lo + hi) / 2) ** j
    return p / p.sum()


def worst_case_ep_permutation(loads: np.ndarray, ep_size: int) -> np.ndarray:
    """Expert relabelling ``perm [E]`` (new id -> old id) that swaps the heaviest contiguous group of
    E/ep experts with group 0, so rank 0 is the straggler (the reference's conv1d + argmax + swap).
    Ties: the lowest group wins."""
    loads = np.asarray(loads)
    E = loads.size
    if ep_size < 1 or E % ep_size:
        raise ValueError(f"num_experts={E} is not divisible by ep_size={ep_size}")
    g = E // ep_size
    heavy = int(np.argmax(loads.reshape(ep_size, g).sum(axis=1)))
    perm = np.arange(E)
    perm[:g], perm[heavy * g:(heavy + 1) * g] = np.arange(heavy * g, (heavy + 1) * g), np.arange(g)
    return perm
