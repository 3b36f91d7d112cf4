"""Run the static placements over a trace's layers (fit before the split, score after): the table behind
the static placement figures. (The cache tables live in moelab.cache, so a cache edit reruns only caching.)"""

from __future__ import annotations

import numpy as np
import polars as pl

from moelab.placement import static


def static_table(trace, devices: list[int], fraction: float, slack: float, seed: int) -> pl.DataFrame:  # noqa: ANN001
    """One row per (layer, devices, policy): devices per token, load CV, PAR on the scored part."""
    m = trace.meta
    ex = trace.experts_by_layer()
    split = trace.split_token(fraction)
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
