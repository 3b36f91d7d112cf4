"""Run the static placements over a trace's layers (fit before the split, score after): the table behind
the static placement figures. (The cache tables live in moelab.cache, so a cache edit reruns only caching.)

Each placement is also fitted and scored once inside the fitted part (the same split, nested: fit on its
first ``split_fraction``, score on the rest). Those ``select_*`` scores are what ``tables.static_matched``
chooses a placement by, so the choice never sees the held-out iterations it is judged on."""

from __future__ import annotations

import numpy as np
import polars as pl

from moelab.placement import static


def nested_split(split: int, concurrency: int, split_fraction: float) -> int:
    """First token of the selection part inside the fitted tokens ``[0, split)``: the split applied again to
    the fitted iterations. Both halves must hold a whole iteration."""
    fitted = split // concurrency
    inner = int(fitted * split_fraction)
    if inner < 1 or inner >= fitted:
        raise ValueError(f"placement.split_fraction={split_fraction}: the fitted part has {fitted} iteration(s); "
                         "the nested selection split needs a whole iteration on each side")
    return inner * concurrency


def _fit(part: np.ndarray, policy: str, num_experts: int, devices: int, seed: list[int], load_slack: float,
         balance_windows: int, cv_budget: float) -> np.ndarray:
    """One placement fitted on ``part``, with a fresh generator: both fits of a policy draw alike."""
    return static.place(policy, part, num_experts, devices, np.random.default_rng(seed), load_slack,
                        balance_windows, cv_budget)


def static_scores(experts: np.ndarray, num_experts: int, concurrency: int, split: int, devices: list[int],
                  split_fraction: float, load_slack: float, seed: int, cv_budgets: list[float] = (0.02,),
                  balance_windows: int = 8) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``experts`` ``[tokens, layers, k]`` in stream order; ``split`` the first scored token. Returns
    (scores, placements) as :func:`static_table`."""
    inner = nested_split(split, concurrency, split_fraction)
    rows, placed = [], []
    for layer in range(experts.shape[1]):
        e = experts[:, layer, :].astype(np.int64)
        for D in devices:
            if num_experts % D:
                continue
            for policy in static.POLICIES:
                for budget in (cv_budgets if policy == "coactivation_balanced" else [None]):
                    key = {"layer": layer, "devices": D, "policy": policy,
                           "cv_budget": None if budget is None else float(budget)}
                    args = (policy, num_experts, D, [seed, layer, D], load_slack, balance_windows,
                            0.0 if budget is None else budget)
                    dev = _fit(e[:split], *args)
                    select = static.score(e[inner:split], _fit(e[:inner], *args), D, concurrency)
                    rows.append({**key, **static.score(e[split:], dev, D, concurrency),
                                 **{f"select_{k}": v for k, v in select.items()}})
                    placed.append({**key, "device": dev.astype(np.int32).tolist()})
    over = {"cv_budget": pl.Float64}
    return (pl.DataFrame(rows, schema_overrides=over),
            pl.DataFrame(placed, schema_overrides={**over, "device": pl.List(pl.Int32)}))


def static_table(trace, devices: list[int], split_fraction: float, load_slack: float, seed: int,  # noqa: ANN001
                 cv_budgets: list[float] = (0.02,), balance_windows: int = 8) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(scores, placements). Scores: one row per (layer, devices, policy, cv_budget): devices per token, load
    CV, PAR on the scored part, and ``select_devices_per_token``, ``select_load_cv``, ``select_par`` of the
    same policy fitted on the first part of the fitted iterations and scored on the rest of them (no scored
    token reaches these). ``cv_budget`` is null except for ``coactivation_balanced``, which runs once per
    budget. Placements: the same keys and ``device`` ``[E]`` (each expert's device, fitted on the whole
    fitted part): what the exports write."""
    m = trace.meta
    try:
        return static_scores(trace.experts_by_layer(), m.num_experts, m.concurrency,
                             trace.split_token(split_fraction), devices, split_fraction, load_slack, seed, cv_budgets,
                             balance_windows)
    except ValueError as exc:
        raise ValueError(f"trace {m.source_id}: {exc}") from None
