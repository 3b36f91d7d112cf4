"""Maximum-likelihood alpha of one batch's per-expert loads, in the power-law generator's own terms.

The generator (``moelab.synthetic.scenarios``) draws one x_e per expert from the truncated power law on
[1, xmax] (``powerlaw.xmax_for``), turns them into inclusion probabilities q_e = min(1, lam x_e) that sum to
top-k (``loads.cap_profile``), and draws loads as picks: each of a batch's N x k picks lands on expert e with
chance q_e / k. So over N tokens, expert e's load is Binomial(N k, q_e / k), and with lam a free scale the
experts are independent:

    L(alpha, lam) = prod_e  integral Binomial(n_e | N k, min(1, lam x) / k) pdf_alpha(x) dx,   x on [1, xmax].

This alpha is the generator's own (same law, same support, loads in proportion to x), so it reads on the same
axis as alphas matched against sampled workloads; a small batch's noise (zeros, experts near saturation) is
part of the model rather than a reason to drop experts. A real router's counts spread less than these picks
(a token takes an expert at most once), so on captured traces the model allows more noise than there is.
lam is profiled out; the interval is the likelihood-ratio one (approximate with few experts).

Per expert, with r = q / k = e^t, the integral is C(Nk, n) norm(alpha) lam^(alpha - 1) k^(1 - alpha) times

    integral over t in [log(lam / k), log(min(1, lam xmax) / k)] of exp((n - alpha + 1) t) (1 - e^t)^(Nk - n) dt

(an incomplete beta function when n - alpha + 1 > 0, a quadrature otherwise), plus, where lam xmax > 1, the
experts pinned at q = 1: Binomial(n | Nk, 1 / k) times the law's mass above x = 1 / lam.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special, stats
from scipy.optimize import brentq, minimize_scalar

MAX_ALPHA = 6.0  # past this the law is all but a point mass at x = 1 (balanced): the profile only creeps up
ALPHA_STEP = 0.1  # coarse grid the profile is scanned on before it is refined (it need not be unimodal)
SCALE_POINTS = 32  # coarse grid of log lam per alpha, refined by Brent around the best point
_BETA_MIN_A = 0.5  # incomplete beta below this first parameter loses digits to cancellation: quadrature instead
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(64)
_CUTOFF = 50.0  # (1 - r)^m <= exp(-m r): 50 / m past the lower end the integrand is below e^-50 of its start


@dataclass(frozen=True)
class AlphaFit:
    """The maximum-likelihood alpha, its likelihood-ratio interval at ``level`` and the maximised log
    likelihood. An alpha at the search's upper end: loads more even than any alpha in range makes likely."""

    alpha: float
    low: float
    high: float
    level: float
    loglik: float


def _log_norm(alpha: np.ndarray | float, xmax: float) -> np.ndarray:
    """log of the power law's density constant on [1, xmax] (log-uniform at alpha = 1)."""
    a = 1.0 - np.asarray(alpha, dtype=np.float64)
    near_one = np.abs(a) < 1e-9
    safe = np.where(near_one, 1.0, a)
    return np.where(near_one, -np.log(np.log(xmax)), np.log(safe / np.expm1(safe * np.log(xmax))))


def _log_beta_part(s: np.ndarray, m: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """log of the integral of r^(s-1) (1-r)^m over [e^lo, e^hi], s > 0: a difference of regularised incomplete
    betas, taken on the upper tails where the mass lies below e^lo (no cancellation between two near-ones)."""
    b = m + 1.0
    x0, x1 = np.exp(lo), np.exp(hi)
    up = s / (s + b) < x0
    diff = np.empty(s.shape)
    diff[~up] = special.betainc(s[~up], b[~up], x1[~up]) - special.betainc(s[~up], b[~up], x0[~up])
    diff[up] = special.betaincc(s[up], b[up], x0[up]) - special.betaincc(s[up], b[up], x1[up])
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(diff > 0, np.log(np.where(diff > 0, diff, 1.0)) + special.betaln(s, b), -np.inf)


def _log_quad_part(s: np.ndarray, m: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The same integral by Gauss-Legendre in t = log r, any s: over [lo, hi] cut where (1 - r)^m has died."""
    with np.errstate(divide="ignore", over="ignore"):
        top = np.minimum(hi, np.log(np.exp(lo) + _CUTOFF / m))
    half, mid = (top - lo) / 2, (top + lo) / 2
    t = mid[..., None] + half[..., None] * _NODES
    with np.errstate(divide="ignore", invalid="ignore"):
        f = s[..., None] * t + m[..., None] * np.log1p(-np.exp(t))
    peak = f.max(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        total = (np.exp(f - peak[..., None]) * _WEIGHTS).sum(axis=-1) * half
        return np.where((total > 0) & np.isfinite(peak), peak + np.log(np.where(total > 0, total, 1.0)), -np.inf)


def _loglik(alpha: float, log_lam: np.ndarray, counts: np.ndarray, mult: np.ndarray, tokens: int, top_k: int,
            xmax: float) -> np.ndarray:
    """Log likelihood at one alpha for each log lam in ``log_lam`` ``[J]``; ``counts`` ``[U]`` distinct loads,
    ``mult`` ``[U]`` how many experts have each."""
    log_lam = np.asarray(log_lam, dtype=np.float64)[:, None] + np.zeros(counts.size)  # [J, U]
    picks, log_k = tokens * top_k, np.log(top_k)
    lo = log_lam - log_k  # in r = q / k, the chance that one of the batch's picks lands on the expert
    hi = np.minimum(0.0, log_lam + np.log(xmax)) - log_k
    n = np.broadcast_to(counts.astype(np.float64), lo.shape)
    m, s = picks - n, n - alpha + 1.0
    log_binom = special.gammaln(picks + 1) - special.gammaln(n + 1) - special.gammaln(m + 1)
    part = np.full(lo.shape, -np.inf)
    beta = s > _BETA_MIN_A
    ok = lo < hi
    if (sel := ok & beta).any():
        part[sel] = _log_beta_part(s[sel], m[sel], lo[sel], hi[sel])
    if (sel := ok & ~beta).any():
        part[sel] = _log_quad_part(s[sel], m[sel], lo[sel], hi[sel])
    part += log_binom + (1.0 - alpha) * log_k
    # experts with lam x >= 1 are pinned at q = 1: each pick lands on them with chance 1 / k
    top = log_lam + np.log(xmax)
    a = 1.0 - alpha
    with np.errstate(divide="ignore", invalid="ignore"):
        mass = np.log(top) if abs(a) < 1e-9 else np.log(np.expm1(a * top) / a)
        pinned = log_binom - n * log_k + special.xlog1py(m, -1.0 / top_k) + mass
        part = np.where(top > 0, np.logaddexp(part, pinned), part)
    per = _log_norm(alpha, xmax) + (alpha - 1.0) * log_lam + part
    return (per * mult).sum(axis=1)


class _Profile:
    """log lam profiled out, one alpha at a time (cached: the interval search revisits alphas)."""

    def __init__(self, loads: np.ndarray, tokens: int, top_k: int, xmax: float):
        self.counts, self.mult = np.unique(np.asarray(loads, dtype=np.int64), return_counts=True)
        self.tokens, self.top_k, self.xmax = int(tokens), int(top_k), float(xmax)
        # lam x_max must reach the busiest expert's share; lam < 1 (at 1 every expert would take every token)
        first = np.log(max(int(self.counts.max()), 1) / (self.tokens * self.xmax)) - 4.0
        self.grid = np.linspace(first, -1e-9, SCALE_POINTS)
        self.cache: dict[float, float] = {}

    def __call__(self, alpha: float) -> float:
        alpha = float(alpha)
        if alpha not in self.cache:
            ll = _loglik(alpha, self.grid, self.counts, self.mult, self.tokens, self.top_k, self.xmax)
            best = int(np.argmax(ll))
            value = float(ll[best])
            if np.isfinite(value):
                a, b = self.grid[max(best - 1, 0)], self.grid[min(best + 1, len(self.grid) - 1)]
                res = minimize_scalar(lambda v: -_loglik(alpha, np.array([v]), self.counts, self.mult, self.tokens,
                                                         self.top_k, self.xmax)[0], bounds=(a, b), method="bounded",
                                      options={"xatol": 1e-6})
                value = max(value, -float(res.fun))
            self.cache[alpha] = value
        return self.cache[alpha]


def fit(loads: np.ndarray, tokens: int, top_k: int, xmax: float, level: float = 0.95,
        max_alpha: float = MAX_ALPHA) -> AlphaFit:
    """Maximum-likelihood alpha of one batch: ``loads`` ``[E]`` tokens per expert over ``tokens`` tokens routed
    to ``top_k`` experts each (an expert at most once per token, so no load exceeds ``tokens``), the law on
    [1, ``xmax``]; alpha searched on [0, ``max_alpha``]."""
    loads = np.asarray(loads)
    if loads.ndim != 1 or loads.size < 2:
        raise ValueError(f"loads must be one load per expert (at least 2), got shape {loads.shape}")
    if (loads < 0).any() or (loads > tokens).any() or not 0 < loads.sum() <= tokens * top_k:
        raise ValueError(f"loads must lie in [0, tokens={tokens}] with a positive total of at most tokens x "
                         f"top_k={top_k}")
    if top_k < 1:
        raise ValueError(f"top_k={top_k} must be >= 1")
    if not xmax > 1:
        raise ValueError(f"xmax={xmax} must exceed 1 (the law's lower bound)")
    prof = _Profile(loads, tokens, top_k, xmax)
    grid = np.linspace(0.0, max_alpha, int(round(max_alpha / ALPHA_STEP)) + 1)
    ll = np.array([prof(a) for a in grid])
    i = int(np.argmax(ll))
    a, b = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    res = minimize_scalar(lambda x: -prof(x), bounds=(a, b), method="bounded", options={"xatol": 1e-4})
    best, top = (float(res.x), -float(res.fun)) if -res.fun > ll[i] else (float(grid[i]), float(ll[i]))
    cut = top - stats.chi2.ppf(level, 1) / 2
    inside = np.flatnonzero(ll >= cut)
    first, last = (int(inside[0]), int(inside[-1])) if inside.size else (i, i)

    def edge(j_in: int, j_out: int) -> float:
        """Where the profile crosses the cut between a grid point inside and its neighbour outside."""
        if not 0 <= j_out < len(grid):
            return float(grid[j_in])
        return float(brentq(lambda x: prof(x) - cut, grid[j_in], grid[j_out], xtol=1e-4))

    return AlphaFit(best, min(edge(first, first - 1), best), max(edge(last, last + 1), best), level, top)
