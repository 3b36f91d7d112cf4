"""Run the static placements over a trace's layers (fit before the split, score after): the table behind
the static placement figures. (The cache tables live in moelab.cache, so a cache edit reruns only caching.)"""

from __future__ import annotations

import numpy as np
import polars as pl

from moelab.placement import static


def static_table(trace, devices: list[int], split_fraction: float, load_slack: float, seed: int,  # noqa: ANN001
                 cv_budgets: list[float] = (0.02,), balance_windows: int = 8) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(scores, placements). Scores: one row per (layer, devices, policy, cv_budget): devices per token, load
    CV, PAR on the scored part. ``cv_budget`` is null except for ``coactivation_balanced``, which runs once per
    budget. Placements: the same keys and ``device`` ``[E]`` (each expert's device): what the exports write."""
    m = trace.meta
    ex = trace.experts_by_layer()
    split = trace.split_token(split_fraction)
    rows, placed = [], []
    for layer in range(m.n_moe_layers):
        e = ex[:, layer, :].astype(np.int64)
        for D in devices:
            if m.num_experts % D:
                continue
            for policy in static.POLICIES:
                for budget in (cv_budgets if policy == "coactivation_balanced" else [None]):
                    rng = np.random.default_rng([seed, layer, D])
                    dev = static.place(policy, e[:split], m.num_experts, D, rng, load_slack, balance_windows,
                                       0.0 if budget is None else budget)
                    key = {"layer": layer, "devices": D, "policy": policy,
                           "cv_budget": None if budget is None else float(budget)}
                    rows.append({**key, **static.score(e[split:], dev, D, m.concurrency)})
                    placed.append({**key, "device": dev.astype(np.int32).tolist()})
    over = {"cv_budget": pl.Float64}
    return (pl.DataFrame(rows, schema_overrides=over),
            pl.DataFrame(placed, schema_overrides={**over, "device": pl.List(pl.Int32)}))
