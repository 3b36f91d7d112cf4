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


def reference_batch_loads(weights: np.ndarray, tokens: int, top_k: int) -> np.ndarray:
    """The reference's one deterministic batch: loads ``[E]`` from popularity ``weights`` ``[E]``.

    Scaled to tokens * top_k, rounded (largest remainder, so the total is exact), capped at
    ``tokens`` per expert, and the capped excess spread round-robin over experts below the cap
    (the public version's rule). Total is exactly tokens * top_k.
    """
    w = np.asarray(weights, dtype=np.float64)
    E = w.size
    total = tokens * top_k
    if top_k > E:
        raise ValueError(f"top_k={top_k} exceeds num_experts={E}")
    raw = w / w.sum() * total
    loads = np.floor(raw).astype(np.int64)
    short = total - int(loads.sum())
    if short:
        frac_order = np.lexsort((np.arange(E), -(raw - loads)))  # largest remainder, then lower id
        loads[frac_order[:short]] += 1
    excess = int(np.maximum(loads - tokens, 0).sum())
    loads = np.minimum(loads, tokens)
    while excess:
        room = np.flatnonzero(loads < tokens)
        take = min(excess, room.size)
        loads[room[:take]] += 1
        excess -= take
    return loads


def expected_top_share(rng: np.random.Generator, alpha: float, num_experts: int,
                       reference_tokens: int, top_fraction: float = 0.2, draws: int = 2000) -> tuple[float, float]:
    """Monte-Carlo mean and std of the top-``top_fraction`` experts' share of a sampled profile."""
    p = profile(rng, alpha, num_experts, reference_tokens, layers=draws)
    n_top = max(1, int(np.ceil(top_fraction * num_experts)))
    share = -np.sort(-p, axis=1)[:, :n_top].sum(axis=1)
    return float(share.mean()), float(share.std())
