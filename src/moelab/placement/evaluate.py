"""Run the static placements and the cache policies over a trace's layers (fit before the split,
score after): the tables behind the placement stage's figures."""

from __future__ import annotations

import numpy as np
import polars as pl

from moelab import cache
from moelab.placement import static


def split_token(trace, fraction: float) -> int:  # noqa: ANN001 - moelab.traces.Trace
    """First token of the scored part: ``split_iteration = floor(fraction * iterations)``."""
    return int(trace.n_iterations * fraction) * trace.meta.concurrency


def static_table(trace, devices: list[int], fraction: float, slack: float, seed: int) -> pl.DataFrame:  # noqa: ANN001
    """One row per (layer, devices, policy): devices per token, load CV, PAR on the scored part."""
    m = trace.meta
    ex = trace.experts_by_layer()
    split = split_token(trace, fraction)
    rows = []
    for layer in range(m.n_moe_layers):
        e = ex[:, layer, :].astype(np.int64)
        for D in devices:
            if m.num_experts % D:
                continue
            for policy in static.POLICIES:
                rng = np.random.default_rng([seed, layer, D])
                dev = static.place(policy, e[:split], m.num_experts, D, rng, slack)
                rows.append({"layer": layer, "devices": D, "policy": policy,
                             **static.score(e[split:], dev, D, m.concurrency)})
    return pl.DataFrame(rows)


def cache_table(trace, capacities: list[float], fraction: float) -> pl.DataFrame:  # noqa: ANN001
    """One row per (layer, capacity, policy): demand miss rate on the scored part. Capacities are
    fractions of the expert count (at least top_k)."""
    m = trace.meta
    ex = trace.experts_by_layer()
    split = split_token(trace, fraction)
    caps = sorted({min(m.num_experts, max(m.top_k, round(f * m.num_experts))) for f in capacities})
    rows = []
    for layer in range(m.n_moe_layers):
        req = ex[:, layer, :]
        for c in caps:
            for policy in cache.POLICIES:
                r = cache.simulate(req, m.num_experts, c, policy, start=split)
                rows.append({"layer": layer, "capacity": c, "capacity_share": c / m.num_experts,
                             "policy": policy, "miss_rate": r["miss_rate"]})
    return pl.DataFrame(rows)
