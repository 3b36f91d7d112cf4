"""Load statistics for any trace, per layer: balance measures, effective alpha, per-device loads."""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy.optimize import minimize_scalar

from moelab.synthetic import powerlaw

TOP_FRACTION = 0.2
# What the published power-law workload note claims for the top-20% share (docs/stages/statistics.md).
REFERENCE_TOP20_CLAIM = {1.01: (0.30, 0.40), 1.2: (0.60, 0.70)}


def cv(x: np.ndarray) -> float:
    """Coefficient of variation (population std / mean)."""
    m = x.mean()
    return float(x.std() / m) if m > 0 else float("nan")


def gini(x: np.ndarray) -> float:
    """Gini coefficient of non-negative values (0 = equal, -> 1 = one takes all)."""
    s = np.sort(np.asarray(x, dtype=np.float64))
    n, tot = s.size, s.sum()
    if tot == 0:
        return float("nan")
    return float((2 * np.arange(1, n + 1) - n - 1) @ s / (n * tot))


def top_share(x: np.ndarray, fraction: float = TOP_FRACTION) -> float:
    """Share of the total taken by the top ceil(fraction * n) entries."""
    n_top = max(1, int(np.ceil(fraction * x.size)))
    return float(np.sort(x)[::-1][:n_top].sum() / x.sum())


def entropy_bits(x: np.ndarray) -> float:
    p = x / x.sum()
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


# Loads spanning less than this factor (max/min) leave alpha unidentified.
MIN_ALPHA_SPAN = 2.0


def fit_alpha(loads: np.ndarray, min_span: float = MIN_ALPHA_SPAN) -> float:
    """Maximum-likelihood alpha of a truncated power law fitted to positive loads.

    Loads are treated as samples x_e (the generator draws one x per expert and scales them); the
    bounds' MLE are the sample min and max, and alpha is scale-free, so the scale of the loads
    does not matter. Zeros are excluded.

    NaN when the loads span less than ``min_span`` (max/min): on a narrow range every alpha fits
    about equally well (near-balanced routers would otherwise report arbitrary alphas).
    """
    x = np.asarray(loads, dtype=np.float64)
    x = x[x > 0]
    if x.size < 2 or x.max() < x.min() * min_span:
        return float("nan")
    lo, hi, slog, n = x.min(), x.max(), np.log(x).sum(), x.size

    def nll(alpha: float) -> float:
        return -(n * np.log(powerlaw.pdf(np.array([lo]), alpha, lo, hi)[0] * lo**alpha) - alpha * slog)

    res = minimize_scalar(nll, bounds=(0.0, 8.0), method="bounded", options={"xatol": 1e-6})
    return float(res.x)


def layer_table(hot: np.ndarray, concurrency: int | None, top_k: int | None, ep_sizes: list[int]) -> pl.DataFrame:
    """One row per layer from hotness ``[I, L, E]``. ``concurrency`` None (an imported hotness: iterations of
    varying size): tokens are counts / top-k (null without top-k) and the saturation columns are null."""
    I, L, E = hot.shape
    tot = hot.sum(axis=0)  # [L, E]
    rows = []
    for layer in range(L):
        x = tot[layer].astype(np.float64)
        fixed = concurrency is not None
        tokens = int(I * concurrency) if fixed else (int(round(x.sum() / top_k)) if top_k else None)
        row = {
            "layer": layer,
            "tokens": tokens,
            "load_cv": cv(x),
            "max_mean": float(x.max() / x.mean()),
            "gini": gini(x),
            "top20_share": top_share(x),
            "entropy_bits": entropy_bits(x),
            "entropy_norm": entropy_bits(x) / np.log2(E),
            "zero_experts": int((x == 0).sum()),
            "saturated_experts": int((x == I * concurrency).sum()) if fixed else None,
            "saturated_share": float((hot[:, layer] == concurrency).mean()) if fixed else None,
            "alpha_mle": fit_alpha(x),
        }
        for ep in ep_sizes:
            dev = hot[:, layer].reshape(I, ep, E // ep).sum(axis=2)  # [I, ep] contiguous groups
            dtot = dev.sum(axis=0)
            row[f"dev{ep}_max_mean"] = float(dtot.max() / dtot.mean())
            row[f"dev{ep}_max_mean_iter"] = float((dev.max(axis=1) / dev.mean(axis=1)).mean())
        rows.append(row)
    return pl.DataFrame(rows, schema_overrides={"tokens": pl.Int64, "saturated_experts": pl.Int64,
                                                "saturated_share": pl.Float64})


def expert_table(hot: np.ndarray) -> pl.DataFrame:
    """(layer, expert, load, share, rank) over the whole trace; rank 1 = hottest."""
    tot = hot.sum(axis=0)
    L, E = tot.shape
    rank = np.argsort(np.argsort(-tot, axis=1, kind="stable"), axis=1) + 1
    return pl.DataFrame({
        "layer": np.repeat(np.arange(L), E).astype(np.int32),
        "expert": np.tile(np.arange(E), L).astype(np.int32),
        "load": tot.ravel().astype(np.int64),
        "share": (tot / tot.sum(axis=1, keepdims=True)).ravel(),
        "rank": rank.ravel().astype(np.int32),
    })


def device_table(hot: np.ndarray, ep_sizes: list[int]) -> pl.DataFrame:
    """(ep_size, layer, device, load, share, max_mean_iter) with contiguous E/ep experts per device."""
    I, L, E = hot.shape
    frames = []
    for ep in ep_sizes:
        dev = hot.reshape(I, L, ep, E // ep).sum(axis=3)  # [I, L, ep]
        tot = dev.sum(axis=0)
        frames.append(pl.DataFrame({
            "ep_size": np.full(L * ep, ep, np.int32),
            "layer": np.repeat(np.arange(L), ep).astype(np.int32),
            "device": np.tile(np.arange(ep), L).astype(np.int32),
            "load": tot.ravel().astype(np.int64),
            "rel_load": (tot / tot.mean(axis=1, keepdims=True)).ravel(),
        }))
    return pl.concat(frames)


def timeline_table(hot: np.ndarray, window: int, layer: int = 0) -> pl.DataFrame:
    """Expert load share per window of iterations for one layer: (window_start, expert, share)."""
    I, _, E = hot.shape
    w = max(1, min(window, I))
    n = I // w
    x = hot[: n * w, layer].reshape(n, w, E).sum(axis=1).astype(np.float64)
    share = x / x.sum(axis=1, keepdims=True)
    return pl.DataFrame({
        "window_start": np.repeat(np.arange(n) * w, E).astype(np.int64),
        "expert": np.tile(np.arange(E), n).astype(np.int32),
        "share": share.ravel(),
    })


def top20_expectation(trace_config: dict, seed: int, draws: int = 2000) -> dict[str, float]:
    """For a power-law scenario (``trace_config``: the trace's own metadata, ``TraceMeta.config``): the sampler's
    expected top-20% share at its reference_tokens (Monte Carlo, seeded) and the published claimed range, when
    it states one."""
    config = trace_config
    sc = config.get("scenario", {})
    if sc.get("kind") != "powerlaw" or not sc.get("alpha"):
        return {"top20_expected": float("nan"), "top20_expected_sd": float("nan"),
                "top20_claim_lo": float("nan"), "top20_claim_hi": float("nan")}
    alpha, E, ref = float(sc["alpha"]), int(config["num_experts"]), int(config["reference_tokens"])
    mean, sd = powerlaw.expected_top_share(np.random.default_rng(seed), alpha, E, ref, TOP_FRACTION, draws)
    lo, hi = REFERENCE_TOP20_CLAIM.get(round(alpha, 2), (float("nan"), float("nan")))
    return {"top20_expected": mean, "top20_expected_sd": sd, "top20_claim_lo": lo, "top20_claim_hi": hi}
