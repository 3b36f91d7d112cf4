"""Dynamic placement on a trace's hotness: Default, DS-EPLB (global, and hierarchical when the config has
nodes) and moelab's policy side by side, with DS-EPLB fed the coming window as a bound; scored with the
competition's modelled time (constants from the config)."""

from __future__ import annotations

import numpy as np
import polars as pl

from moelab.placement import policies
from moelab.placement import simulator as sim


def _specs(E: int, d: dict) -> tuple[dict, int, int]:
    D = d["devices"]
    const = dict(zero_to_one=d["zero_to_one"], par_weight=d["par_weight"], slot_bytes=d["slot_bytes"],
                 bandwidth=d["bandwidth"], policy_seconds=d["policy_seconds"])
    return const, D, E // D + d["redundant_slots"]


def sweep(hot: np.ndarray, d: dict, intervals: list[int]) -> pl.DataFrame:
    """DS-EPLB and moelab at each call interval (iterations): the PAR vs slots-moved frontier. Scores are
    against DS-EPLB at its pinned ``eplb_interval``; windows stay as configured."""
    I, L, E = hot.shape
    const, D, S = _specs(E, d)
    pinned = sim.SimSpec(D, S, window=d["eplb_window"], interval=d["eplb_interval"], **const)
    ref = sim.simulate(hot, policies.eplb_policy(pinned), pinned)
    rows = []
    for iv in intervals:
        eplb = sim.SimSpec(D, S, window=d["eplb_window"], interval=iv, **const)
        ours = sim.SimSpec(D, S, window=d["window"], interval=iv, first_call=d["eplb_window"], **const)
        runs = {"DS-EPLB": sim.simulate(hot, policies.eplb_policy(eplb), eplb),
                "moelab": sim.simulate(hot, policies.moelab_policy(ours, total_iterations=I, halflife=d["halflife"],
                                                                   max_moves=d["max_moves"]), ours)}
        rows += [{"policy": name, "interval": iv, "mean_par": r["mean_par"], "transmit": r["transmit"],
                  "calls": r["calls"], "modelled_time": r["modelled_time"], "score_vs_eplb": sim.score(r, ref)}
                 for name, r in runs.items()]
    return pl.DataFrame(rows)


def capacity_sweep(hot: np.ndarray, d: dict, devices: list[int], redundant: list[int]) -> pl.DataFrame:
    """Default, DS-EPLB and moelab on every (devices, redundant slots per device) pair, each scored against
    DS-EPLB on the same devices and slots; cadences and constants as configured. How much replication
    buys, and whether moelab's lead holds as the cluster grows."""
    I, L, E = hot.shape
    const, _, _ = _specs(E, d)
    rows = []
    for D in devices:
        if E % D:
            raise ValueError(f"placement.sweep_devices: {D} does not divide the trace's {E} experts")
        for r in redundant:
            S = E // D + r
            base = sim.SimSpec(D, S, window=d["eplb_window"], interval=d["eplb_interval"], **const)
            ours = sim.SimSpec(D, S, window=d["window"], interval=d["interval"], first_call=d["eplb_window"],
                               **const)
            runs = {"Default": sim.simulate(hot, None, base),
                    "DS-EPLB": sim.simulate(hot, policies.eplb_policy(base), base),
                    "moelab": sim.simulate(hot, policies.moelab_policy(
                        ours, total_iterations=I, halflife=d["halflife"], max_moves=d["max_moves"]), ours)}
            ref = runs["DS-EPLB"]
            rows += [{"policy": name, "sweep_devices": D, "redundant_slots": r, "slots_per_device": S,
                      "mean_par": x["mean_par"], "transmit": x["transmit"], "calls": x["calls"],
                      "modelled_time": x["modelled_time"], "score_vs_eplb": sim.score(x, ref)}
                     for name, x in runs.items()]
    return pl.DataFrame(rows)


def evaluate(hot: np.ndarray, d: dict) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Returns (summary: one row per policy, timeline: PAR per iteration and policy, mean over
    layers). ``d`` is the config's ``placement.dynamic`` block."""
    I, L, E = hot.shape
    const, D, S = _specs(E, d)
    nodes, groups = d["nodes"], d["expert_groups"]
    if D % nodes or groups % nodes or E % groups:
        raise ValueError(f"placement.dynamic: nodes={nodes} must divide devices={D} and expert_groups={groups}, "
                         f"and expert_groups the {E} experts")
    base = sim.SimSpec(D, S, window=d["eplb_window"], interval=d["eplb_interval"], **const)
    ours = sim.SimSpec(D, S, window=d["window"], interval=d["interval"], first_call=d["eplb_window"], **const)
    runs = {
        "Default": sim.simulate(hot, None, base),
        "DS-EPLB": sim.simulate(hot, policies.eplb_policy(base), base),
        **({"DS-EPLB hierarchical": sim.simulate(hot, policies.eplb_policy(base, groups, nodes), base)} if nodes > 1
           else {}),
        "moelab": sim.simulate(hot, policies.moelab_policy(ours, total_iterations=I, halflife=d["halflife"],
                                                           max_moves=d["max_moves"]), ours),
    }
    if d["oracle"]:
        oracle = sim.SimSpec(D, S, window=d["eplb_window"], interval=d["eplb_interval"], oracle=True, **const)
        runs["DS-EPLB oracle (bound)"] = sim.simulate(hot, policies.eplb_policy(oracle), oracle)
    ref = runs["DS-EPLB"]
    summary = pl.DataFrame([{"policy": name, "mean_par": r["mean_par"], "transmit": r["transmit"],
                             "calls": r["calls"], "modelled_time": r["modelled_time"],
                             "score_vs_eplb": sim.score(r, ref)} for name, r in runs.items()])
    timeline = pl.concat([pl.DataFrame({"iteration": np.arange(I, dtype=np.int32),
                                        "par": r["par"].mean(1), "policy": name})
                          for name, r in runs.items()])
    return summary, timeline
