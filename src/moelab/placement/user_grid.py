"""A user's policy (:mod:`moelab.placement.user_policies`) on the grid's cells and imported loads, scored the
three ways the grid scores moelab (:func:`moelab.placement.dynamic_grid.evaluate_hotness`), against the very
DS-EPLB runs of the cell's own table, so its rows sit next to DS-EPLB's and moelab's in one table.

- (b) ``score_vs_eplb``: in moelab's simulator at DS-EPLB's configured cadence, from the contiguous start;
- (c) ``score_vs_strongest``: that run against the cell's strongest DS-EPLB variant;
- (a) ``competition_score``: in the competition's loop at the evaluator's cadence.

Each call delays its redeployment: in the deterministic tables by the entry's ``seconds_per_call`` (DS-EPLB's
configured time at that EP size when it has none), in the tables under ``results/bench/`` by its measured wall
time, which is how the competition charges it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from moelab.placement import competition
from moelab.placement.dynamic_grid import CellSpec
from moelab.placement.policy_specs import DynamicPolicies
from moelab.placement.user_policies import Runner, UserPolicySpec, simulate, simulate_competition


def _row(table: pl.DataFrame, policy: str, where: str) -> dict[str, Any]:
    rows = table.filter(pl.col("policy") == policy)
    if rows.height != 1:
        raise ValueError(f"{where}: expected one {policy} row in the cell's table, found {rows.height}")
    return rows.row(0, named=True)


def evaluate(spec: UserPolicySpec, loaded: Any, hot: np.ndarray, grid: CellSpec, pol: DynamicPolicies, ep: int,
             cell_tables: dict[str, pl.DataFrame], keys: dict, full_layers: int | None = None) -> dict[str, dict]:
    """One row per kind of delay (the keys of ``cell_tables``: "modelled", "measured"), each the grid table's
    columns for ``spec``'s policy on hotness ``[I, L, E]`` at ``ep`` devices; ``cell_tables``: the cell's own
    rows (DS-EPLB, its variants, the bound and the oracle come from there). ``full_layers`` as in the grid."""
    I, L, E = hot.shape
    S = E // ep + 1
    scale = (full_layers or L) / L
    paced_as = full_layers if full_layers and full_layers > L else None
    seconds = spec.seconds_per_call if spec.seconds_per_call is not None else grid.seconds("DS-EPLB", ep)
    served = np.where(hot == 0, 1.0, hot).astype(np.float64)
    runner = Runner(spec, loaded, ep, S, L, E)
    first = min(pol.eplb.call_interval, I - 1)
    out = {}
    for kind, table in cell_tables.items():
        where = f"{spec.where}: {keys}"
        measured = kind == "measured"
        ref = _row(table, "DS-EPLB", where)
        strongest = _row(table, ref["strongest_eplb"], where)
        sp = pol.sim_spec("DS-EPLB", ep, S, policy_seconds=seconds, iteration_seconds=grid.iteration_seconds,
                          measured_delay=measured, transmit_scale=scale, full_layers=paced_as)
        run = simulate(runner, hot, sp)
        delay = None if measured else (lambda call, s: competition.delay_iterations(seconds))
        comp = simulate_competition(runner, served, pol.eplb.call_interval, ep, delay, full_layers)
        after = float(run["par"][first:].mean())
        gap = ref["mean_par"] - ref["bound_par"]
        ref_after, oracle = ref["mean_par_after_first_call"], ref["oracle_par"]
        if ref["competition_transmit"] is None:
            comp_score = float("nan")
        else:
            base = competition.modelled_time(ref["competition_mean_par"], ref["competition_transmit"] * scale)
            comp_score = 100.0 * base / competition.modelled_time(comp["mean_par"], comp["transmit"] * scale)
        out[kind] = {**keys, "policy": spec.name, "eplb_variant": False, "user_policy": True,
                     "first_call": sp.interval, "call_interval": sp.interval,
                     "mean_par": run["mean_par"], "mean_par_after_first_call": after,
                     "bound_par": ref["bound_par"], "bound_par_after_first_call": ref["bound_par_after_first_call"],
                     "transmit": run["transmit"], "gb_moved": run["transmit"] * scale * pol.score.slot_bytes / 1e9,
                     "calls": run["calls"], "delay_iterations": run["delay_iterations"],
                     "seconds_per_call": (run["policy_wall_s"] / run["calls"] if measured and run["calls"]
                                          else seconds),
                     "transmit_scale": scale, "modelled_time": run["modelled_time"],
                     "score_vs_eplb": 100.0 * ref["modelled_time"] / run["modelled_time"],
                     "strongest_eplb": ref["strongest_eplb"],
                     "score_vs_strongest": 100.0 * strongest["modelled_time"] / run["modelled_time"],
                     "gap_closed": (ref["mean_par"] - run["mean_par"]) / gap if gap > 0 else float("nan"),
                     "oracle_par": oracle,
                     "oracle_gap_closed": ((ref_after - after) / (ref_after - oracle)
                                           if oracle == oracle and ref_after > oracle else float("nan")),
                     "competition_mean_par": comp["mean_par"], "competition_transmit": comp["transmit"],
                     "competition_calls": comp["calls"], "competition_score": comp_score}
    return out


def frames(rows: list[dict[str, dict]], like: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """Per kind, the rows as a frame with the columns and types of the grid's table ``like[kind]``."""
    out = {}
    for kind, frame in like.items():
        f = pl.DataFrame([r[kind] for r in rows], infer_schema_length=None)
        out[kind] = f.select([pl.col(c).cast(t) for c, t in frame.schema.items() if c in f.columns])
    return out
