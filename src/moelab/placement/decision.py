"""The decision for one load (``docs/stages/placement.md``, "The decision"): per EP size and budget of
redundant slots per device, which placement to serve it with, whether rebalancing pays, and the engine settings
that realise the choice.

The load ``[I, L, E]`` is cut in three, so that nothing is chosen with the data it is scored on:

1. ``[0, fit)``: the static placement is fitted here (DeepSeek's EPLB on the part's summed counts);
2. ``[fit, choose)``: every candidate is scored here and the least modelled time is chosen;
3. ``[choose, I)``: the reported numbers; ``holds`` says whether the choice is still the best there.

Candidates, each with the budget's slots: Default (the engines' trivial map: physical slot ``p`` holds expert ``p
mod E``, never changed), the static placement, DS-EPLB every ``n`` iterations for each cadence given (window
``n``) and moelab's policy at its own cadence. The dynamic ones run over the whole load from the trivial map
(they see only the past), each call delaying its redeployment by its configured seconds; a part's slots moved are
the changes that fall in it. The time of a part is what serving it takes in the model: ``iterations x
iteration_seconds x mean PAR`` (an iteration lasts as long as its busiest device) plus ``slots moved x slot_bytes /
bandwidth`` (``placement.score``). A setting that moves weights is chosen only if it saves at least ``min_gain``
of the best fixed setting's time: a gain within the noise of one packing is not worth moving weights for. A budget whose slots cannot be the same on every rank (half a slot per
device with E / D whole) is listed as not loadable: SGLang, vLLM and TensorRT-LLM all need ``(E + redundant)``
divisible by the EP size.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from moelab.placement import simulator as sim
from moelab.placement.eplb import rebalance
from moelab.placement.policy_specs import DynamicPolicies
from moelab.spec import ConfigSpec


@dataclass(frozen=True)
class DecisionSpec(ConfigSpec):
    """Config block ``placement.decision``: the budgets of redundant slots per device weighed (0.5: half the
    devices' worth, listed as not loadable where the engines cannot hold it) and DS-EPLB's cadences tried."""

    key = "placement.decision"
    redundant_per_device: tuple[float, ...]
    eplb_intervals: tuple[int, ...]
    min_gain: float  # a rebalancing setting is chosen only if it saves at least this share of the serving time

    def __post_init__(self) -> None:
        r, n = self.redundant_per_device, self.eplb_intervals
        if not r or any(isinstance(x, bool) or not isinstance(x, (int, float)) or x < 0 for x in r) \
                or len(set(r)) != len(r):
            raise ValueError(f"redundant_per_device={list(r)}: expected distinct slots per device >= 0")
        if not n or any(isinstance(x, bool) or not isinstance(x, int) or x < 1 for x in n) or len(set(n)) != len(n):
            raise ValueError(f"eplb_intervals={list(n)}: expected distinct iteration counts >= 1")
        if not 0 <= self.min_gain < 1:
            raise ValueError(f"min_gain={self.min_gain}: expected a share of the serving time in [0, 1)")


def trivial(layers: int, experts: int, devices: int, slots: int) -> np.ndarray:
    """The engines' map before any placement: physical slot ``p`` (on device ``p // slots``) holds ``p mod E``."""
    return np.broadcast_to((np.arange(devices * slots) % experts).reshape(devices, slots),
                           (layers, devices, slots)).copy()


def parts(iterations: int, split_fraction: float) -> tuple[int, int]:
    """(fit, choose): the ends of the fitting and choosing parts; the rest is reported."""
    fit = max(1, math.floor(split_fraction * iterations))
    choose = fit + max(1, (iterations - fit) // 2)
    if choose >= iterations:
        raise ValueError(f"{iterations} iterations: too few to fit, choose and report on separate parts "
                         f"(needs at least 3)")
    return fit, choose


def _moved_by_part(changes: list, start: np.ndarray, bounds: Sequence[int]) -> list[int]:
    """Slots moved in each part ``[bounds[j], bounds[j+1])``, from a run's recorded changes."""
    tables = start.copy()
    out = [0] * (len(bounds) - 1)
    for i, layer, table in changes:
        n = int((tables[layer] != table).sum())
        tables[layer] = table
        j = int(np.searchsorted(bounds, i, side="right")) - 1
        if 0 <= j < len(out):
            out[j] += n
    return out


def candidates(hot: np.ndarray, pol: DynamicPolicies, ep: int, slots: int, fit: int, intervals: Sequence[int],
               seconds: dict[str, float], iteration_seconds: float, full_layers: int | None = None) -> dict[str, dict]:
    """Each candidate's per-iteration PAR ``[I, L]``, its recorded changes and its start; ``seconds``: the
    modelled seconds per call of "DS-EPLB" and "moelab" at this EP size. ``full_layers``: the model's layers when
    ``hot`` holds fewer (a workload model's cell): redeployments paced as on the full model, as in the grid."""
    I, L, E = hot.shape
    scale = (full_layers or L) / L
    paced = full_layers if full_layers and full_layers > L else None
    served = np.where(hot == 0, 1.0, hot) if pol.score.zero_to_one else hot
    start = trivial(L, E, ep, slots)
    out = {"Default": {"par": sim.Layout(start, E).par_span(served), "changes": [], "start": start}}
    static, _, _ = rebalance(served[:fit].sum(0), ep * slots, 1, 1, ep)
    static = static.reshape(L, ep, slots)
    out["static"] = {"par": sim.Layout(static, E).par_span(served), "changes": [], "start": static, "tables": static}
    where = dict(iteration_seconds=iteration_seconds, transmit_scale=scale, full_layers=paced)
    runs = {f"DS-EPLB@{n}": ("DS-EPLB", replace(pol.sim_spec("DS-EPLB", ep, slots, call_interval=n,
                                                              policy_seconds=seconds["DS-EPLB"], **where),
                                                 window=n))
            for n in intervals}
    runs["moelab"] = ("moelab", pol.sim_spec("moelab", ep, slots, policy_seconds=seconds["moelab"], **where))
    for name, (kind, sp) in runs.items():
        r = sim.simulate(hot, pol.build(kind, sp, I), sp, initial=start, record=True)
        out[name] = {"par": r["par"], "changes": r["changes"], "start": start, "interval": sp.interval,
                     "window": sp.window}
    return out


def _simplicity(candidate: str) -> tuple[int, float]:
    """Ties go to the simpler setting: Default, then static, then DS-EPLB called least often, then moelab (one
    slot per device, for one, makes every placement equal)."""
    if candidate.startswith("DS-EPLB@"):
        return 2, 1 / int(candidate.split("@")[1])
    return {"Default": (0, 0.0), "static": (1, 0.0)}.get(candidate, (3, 0.0))


def decide(hot: np.ndarray, pol: DynamicPolicies, ep: int, redundant_per_device: float, split_fraction: float,
           intervals: Sequence[int], seconds: dict[str, float], iteration_seconds: float,
           keys: dict | None = None, full_layers: int | None = None,
           min_gain: float = 0.01) -> tuple[list[dict], np.ndarray | None]:
    """The rows of one (EP size, budget) of the decision table, one per candidate with the chosen one marked,
    and the static placement's tables ``[L, D, S]`` (None where the budget is not loadable). ``full_layers``: the
    model's layers when ``hot`` holds fewer; slots moved are then counted for the full model (``transmit_scale``)."""
    I, L, E = hot.shape
    keys = dict(keys or {})
    redundant = redundant_per_device * ep
    base = {**keys, "ep": ep, "redundant_per_device": redundant_per_device,
            "memory_gb_per_device": redundant_per_device * pol.score.slot_bytes / 1e9}
    if redundant != int(redundant) or (E + int(redundant)) % ep or E % ep:
        return [{**base, "loadable": False, "candidate": None, "chosen": False}], None
    slots = (E + int(redundant)) // ep
    fit, choose = parts(I, split_fraction)
    bounds = [0, fit, choose, I]
    runs = candidates(hot, pol, ep, slots, fit, intervals, seconds, iteration_seconds, full_layers)
    scale = (full_layers or L) / L
    rows = []
    for name, r in runs.items():
        moved = [m * scale for m in _moved_by_part(r["changes"], r["start"], bounds)]
        par_choose, par_report = float(r["par"][fit:choose].mean()), float(r["par"][choose:].mean())
        cost = pol.score.slot_bytes / pol.score.bandwidth
        hours = (I - choose) * iteration_seconds / 3600
        rows.append({**base, "loadable": True, "slots_per_device": slots, "transmit_scale": scale, "candidate": name,
                     "rebalances": name not in ("Default", "static"),
                     "call_interval": r.get("interval"), "window": r.get("window"),
                     "fit_iterations": fit, "choose_iterations": choose - fit, "report_iterations": I - choose,
                     "par_choose": par_choose, "moved_choose": moved[1],
                     "time_choose": (choose - fit) * iteration_seconds * par_choose + moved[1] * cost,
                     "par_report": par_report, "moved_report": moved[2],
                     "time_report": (I - choose) * iteration_seconds * par_report + moved[2] * cost,
                     "gb_per_hour": moved[2] * pol.score.slot_bytes / 1e9 / hours})
    best = pick(rows, "time_choose", min_gain)
    again = pick(rows, "time_report", min_gain)  # the same rule on the reported part
    for r in rows:
        r["chosen"] = r is best
        r["holds"] = again is best
        r["rebalancing_pays"] = best["rebalances"]
    return rows, runs["static"]["tables"]


def pick(rows: list[dict], time: str, min_gain: float) -> dict:
    """The least ``time`` among the settings that never move a weight (Default, static); a rebalancing one
    instead only if it saves at least ``min_gain`` of that time. Ties go to the simpler setting."""
    def least(group: list[dict]) -> dict:
        return min(group, key=lambda r: (r[time], _simplicity(r["candidate"])))

    fixed = least([r for r in rows if not r["rebalances"]])
    moving = least([r for r in rows if r["rebalances"]])
    return moving if moving[time] < (1 - min_gain) * fixed[time] else fixed


def engine_settings(row: dict, experts: int, files: dict[str, str] | None = None) -> dict[str, str]:
    """How to serve with ``row``'s candidate in each engine, as the engines' own options spell it; where an
    engine cannot, it says so. ``files``: the static placement's exported files by engine."""
    if not row.get("loadable"):
        return {e: "not loadable: every rank needs the same number of slots" for e in ("sglang", "vllm", "trtllm")}
    ep, redundant, cand = row["ep"], int(round(row["redundant_per_device"] * row["ep"])), row["candidate"]
    sglang = f"--ep-size {ep} --ep-num-redundant-experts {redundant}"
    trt = f"num_slots: {experts + redundant}"
    if cand == "Default":
        vllm = "--enable-expert-parallel" + ("" if redundant == 0 else
                                             " (redundant experts need --enable-eplb, which rebalances: use 0)")
        return {"sglang": sglang + " --init-expert-location trivial", "vllm": vllm,
                "trtllm": "no load balancer" if redundant == 0 else f"{trt}, layer_updates_per_iter: 0 (trivial "
                                                                    f"initial_global_assignments)"}
    if cand == "static":
        if not files:
            where = "the static placement (exported for imported loads only)"
            files = {"sglang": where, "vllm": where, "trtllm": where}
        return {"sglang": f"{sglang} --init-expert-location {files['sglang']}",
                "vllm": f"no file input for a static placement; a plugin can load {files['vllm']}",
                "trtllm": f"{trt}, layer_updates_per_iter: 0, initial_global_assignments from {files['trtllm']}"}
    config = {"num_redundant_experts": redundant, "step_interval": row["call_interval"], "window_size": row["window"]}
    vllm = f"--enable-expert-parallel --enable-eplb --eplb-config '{json.dumps(config, sort_keys=True)}'"
    if cand == "moelab":
        return {"sglang": "not available: SGLang runs its own EPLB algorithms only (closest: DS-EPLB with "
                          f"--eplb-rebalance-num-iterations {row['call_interval']})",
                "vllm": vllm + " with moelab's policy class installed as a plugin (MoelabEplbPolicy)",
                "trtllm": "not available: its online balancer is its own policy"}
    return {"sglang": f"{sglang} --enable-eplb --eplb-algorithm deepseek --eplb-rebalance-num-iterations "
                      f"{row['call_interval']}",
            "vllm": vllm,
            "trtllm": f"not the same policy: its online balancer ({trt}, layer_updates_per_iter > 0) updates "
                      f"continuously from its own statistics"}


def summary(table: "pl.DataFrame") -> "pl.DataFrame":
    """One row per load, EP size and budget: the chosen candidate (or "not loadable"), its numbers on the reported
    part, whether it holds there, whether rebalancing pays, and the engine settings that realise it."""
    import polars as pl

    cols = ["source", "ep", "redundant_per_device", "memory_gb_per_device", "candidate", "par_report",
            "gb_per_hour", "time_report", "holds", "rebalancing_pays", "sglang", "vllm", "trtllm"]
    chosen = table.filter(pl.col("chosen") | ~pl.col("loadable"))
    return (chosen.with_columns(pl.col("candidate").fill_null("not loadable"))
            .select([c for c in cols if c in chosen.columns]).sort("source", "ep", "redundant_per_device"))
