"""Truncated power law on [xmin, xmax]: the reference's inverse-CDF sampler, made exact at alpha = 1.

pdf(x) ∝ x^-alpha on [xmin, xmax]. The public generator divides by (1 - alpha) and breaks at
alpha = 1; there the law is log-uniform, which we use (and switch to within 1e-9 of 1).
"""

from __future__ import annotations

import numpy as np

_ALPHA_ONE_TOL = 1e-9


def _check(alpha: float, xmin: float, xmax: float) -> None:
    if not alpha >= 0:
        raise ValueError(f"alpha={alpha} must be >= 0")
    if not 0 < xmin < xmax:
        raise ValueError(f"need 0 < xmin ({xmin}) < xmax ({xmax})")


def ppf(u: np.ndarray, alpha: float, xmin: float, xmax: float) -> np.ndarray:
    """Inverse CDF: u in [0, 1] -> x in [xmin, xmax]."""
    _check(alpha, xmin, xmax)
    u = np.asarray(u, dtype=np.float64)
    if abs(alpha - 1.0) < _ALPHA_ONE_TOL:
        return xmin * (xmax / xmin) ** u
    a = 1.0 - alpha
    lo, hi = xmin**a, xmax**a
    return ((hi - lo) * u + lo) ** (1.0 / a)


def cdf(x: np.ndarray, alpha: float, xmin: float, xmax: float) -> np.ndarray:
    """CDF on [xmin, xmax] (clipped outside)."""
    _check(alpha, xmin, xmax)
    x = np.clip(np.asarray(x, dtype=np.float64), xmin, xmax)
    if abs(alpha - 1.0) < _ALPHA_ONE_TOL:
        return np.log(x / xmin) / np.log(xmax / xmin)
    a = 1.0 - alpha
    return (x**a - xmin**a) / (xmax**a - xmin**a)


def pdf(x: np.ndarray, alpha: float, xmin: float, xmax: float) -> np.ndarray:
    """Density on [xmin, xmax], zero outside."""
    _check(alpha, xmin, xmax)
    x = np.asarray(x, dtype=np.float64)
    if abs(alpha - 1.0) < _ALPHA_ONE_TOL:
        norm = 1.0 / np.log(xmax / xmin)
    else:
        a = 1.0 - alpha
        norm = a / (xmax**a - xmin**a)
    inside = (x >= xmin) & (x <= xmax)
    return np.where(inside, norm * np.power(np.where(inside, x, 1.0), -alpha), 0.0)


def sample(rng: np.random.Generator, alpha: float, size, xmin: float = 1.0,
           xmax: float = 3276.8) -> np.ndarray:
    """Draw ``size`` samples by inverse-CDF transform of uniforms from ``rng``."""
    return ppf(rng.random(size), alpha, xmin, xmax)


def xmax_for(reference_tokens: int) -> float:
    """The reference samples on [1, 0.8 * tokens]; we name that token count ``reference_tokens``."""
    return 0.8 * float(reference_tokens)


def profile(rng: np.random.Generator, alpha: float, num_experts: int, reference_tokens: int,
            layers: int = 1) -> np.ndarray:
    """Per-layer popularity profiles ``[layers, E]`` (rows sum to 1), experts in sampled order
    (unsorted, as the reference)."""
    x = sample(rng, alpha, (layers, num_experts), 1.0, xmax_for(reference_tokens))
    return x / x.sum(axis=1, keepdims=True)


def _level_fill(counts: np.ndarray, units: np.ndarray, bound: int) -> np.ndarray:
    """Add ``units[r]`` to row ``r`` of ``counts`` ``[R, n]`` one at a time, each to the row's
    least-loaded entry below ``bound`` (ties: lowest index), in closed form.

    One at a time that way, a row's minimum rises level by level, the entries at the current level
    taken in index order. So the result is: every entry below some level ``h`` raised to ``h``, then
    the ``r`` units left over one each to the lowest-index entries at ``h``.
    """
    c = counts.copy()
    lo = c.min(axis=1)  # fill(lo) = 0 <= units
    hi = np.full(len(c), bound, np.int64)
    while (lo < hi).any():  # largest h with fill(h) <= units
        mid = (lo + hi + 1) // 2
        ok = np.clip(mid[:, None] - c, 0, None).sum(axis=1) <= units
        lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid - 1)
    c = np.maximum(c, lo[:, None])
    left = units - (c - counts).sum(axis=1)
    at_level = c == lo[:, None]
    c += at_level & (np.cumsum(at_level, axis=1) <= left[:, None])
    return c


def _per_rank_round_robin(counts: np.ndarray, remaining: int, bound: int, add: bool) -> np.ndarray:
    """The published generator's per-rank adjustment, in closed form. ``counts`` ``[ep, E/ep]``.

    Passes over ranks 0..ep-1 until ``remaining`` units are used; in each pass every rank that can
    still move takes one unit: adding, its least-loaded expert below ``bound`` gains one; removing,
    its most-loaded expert above 0 loses one (ties: lowest index). A rank takes a unit per pass
    until it is full (or empty), so rank ``r`` ends with ``min(room_r, p)`` units after ``p`` full
    passes, plus one if it is among the first ranks served in the last, partial pass. If every
    rank is full before ``remaining`` runs out, the rest is dropped, as the reference's loop stops.
    """
    c = counts if add else -counts  # removing from the top is adding to the negated bottom
    lim = bound if add else 0
    room = (lim - c).sum(axis=1)
    remaining = min(remaining, int(room.sum()))  # the reference stops once no rank can move
    lo, hi = 0, int(room.max(initial=0))
    while lo < hi:  # full passes: largest p with sum(min(room, p)) <= remaining
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if np.minimum(room, mid).sum() <= remaining else (lo, mid - 1)
    units = np.minimum(room, lo)
    served = room > lo
    units += served & (np.cumsum(served) <= remaining - units.sum())
    c = _level_fill(c, units, lim)
    return c if add else -c


def reference_batch_loads(weights: np.ndarray, tokens: int, top_k: int, ep: int = 1) -> np.ndarray:
    """The reference's one deterministic batch: loads ``[E]`` from popularity ``weights`` ``[E]``.

    Follows the current public rule: ai-dynamo/aiconfigurator, ``collector/helper.py``,
    ``_generate_power_law_distribution`` (behind ``power_law_logits_v3``) and its
    ``_round_robin_adjust_per_rank``. Experts sit in ``ep`` contiguous rank blocks of ``E / ep``.

    1. ``weights / sum * tokens * top_k`` rounded half to even;
    2. capped at ``tokens`` per expert (a token takes an expert once); the capped excess is handed
       out one unit at a time, round-robin over the EP ranks (rank 0 first), each unit to that
       rank's least-loaded expert below the cap (ties: lowest index); full ranks are skipped, and
       excess left when all are full is dropped (rounding up can overshoot when top_k is near E);
    3. the total then fixed the same way: a shortfall added as in step 2, a surplus taken one
       unit at a time round-robin over ranks from each rank's most-loaded expert above 0.

    With ``ep = 1`` every unit goes to the least-loaded expert below the cap. Older public versions
    differ: the first did not cap; the next gave each unit to the first expert with room in an order
    sorted once by load, lightest first. The reference then swaps the heaviest rank block to rank 0:
    that is ``loads.worst_case_ep_permutation`` applied to these loads (after, not before, since the
    round-robin starts at rank 0), not done here. We scale in float64 where the reference's tensors
    are float32, so a value within float32 error of a half may round the other way. Total is exactly
    ``tokens * top_k`` and no load exceeds ``tokens``.
    """
    w = np.asarray(weights, dtype=np.float64)
    E = w.size
    total = tokens * top_k
    if top_k > E:
        raise ValueError(f"top_k={top_k} exceeds num_experts={E}")
    if ep < 1 or E % ep:
        raise ValueError(f"num_experts={E} is not divisible by ep={ep}")
    if not (w >= 0).all() or not w.sum() > 0:
        raise ValueError("weights must be non-negative with a positive sum")
    loads = np.rint(w / w.sum() * total).astype(np.int64)  # half to even, as torch.round
    excess = int(np.maximum(loads - tokens, 0).sum())
    by_rank = np.minimum(loads, tokens).reshape(ep, E // ep)
    if excess:
        by_rank = _per_rank_round_robin(by_rank, excess, tokens, add=True)
    delta = total - int(by_rank.sum())
    if delta:
        by_rank = _per_rank_round_robin(by_rank, abs(delta), tokens, add=delta > 0)
    return by_rank.reshape(E)


def expected_top_share(rng: np.random.Generator, alpha: float, num_experts: int,
                       reference_tokens: int, top_fraction: float = 0.2, draws: int = 2000) -> tuple[float, float]:
    """Monte-Carlo mean and std of the top-``top_fraction`` experts' share of a sampled profile."""
    p = profile(rng, alpha, num_experts, reference_tokens, layers=draws)
    n_top = max(1, int(np.ceil(top_fraction * num_experts)))
    share = -np.sort(-p, axis=1)[:, :n_top].sum(axis=1)
    return float(share.mean()), float(share.std())
