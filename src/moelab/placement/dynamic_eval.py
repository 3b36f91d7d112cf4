"""Dynamic placement on a trace's hotness (captured traces, users' imported loads): Default, DS-EPLB (global,
and hierarchical when the config has nodes) and moelab's policy side by side, with DS-EPLB fed the coming window
as a bound. Where they run is ``placement.dynamic`` (:class:`DynamicSpec`); the policies, their cadences and the
score are the ones every dynamic evaluation runs (:class:`moelab.placement.policy_specs.DynamicPolicies`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from moelab.placement import simulator as sim
from moelab.placement.policy_specs import DynamicPolicies
from moelab.spec import ConfigSpec


@dataclass(frozen=True)
class DynamicSpec(ConfigSpec):
    """Config block ``placement.dynamic``: the devices and slots, DS-EPLB hierarchical's nodes and groups,
    the oracle, and the modelled seconds per call charged as a redeployment delay."""

    key = "placement.dynamic"
    devices: int
    redundant_slots: int
    policy_seconds: float
    nodes: int
    expert_groups: int
    oracle: bool

    def __post_init__(self) -> None:
        if self.devices % self.nodes or self.expert_groups % self.nodes:
            raise ValueError(f"nodes={self.nodes} must divide devices={self.devices} and "
                             f"expert_groups={self.expert_groups}")

    def check_experts(self, num_experts: int) -> None:
        """The devices and the expert groups must split a trace's experts evenly."""
        if num_experts % self.devices or num_experts % self.expert_groups:
            raise ValueError(f"{self.key}: devices={self.devices} and expert_groups={self.expert_groups} must "
                             f"divide the {num_experts} experts")

    def sim_spec(self, pol: DynamicPolicies, name: str, num_experts: int, devices: int | None = None,
                 redundant_slots: int | None = None, **where: object) -> sim.SimSpec:
        """Policy ``name``'s simulator spec on ``devices`` x (experts per device + ``redundant_slots``)
        (default: this block's), with this block's seconds per call."""
        D = self.devices if devices is None else devices
        r = self.redundant_slots if redundant_slots is None else redundant_slots
        return pol.sim_spec(name, D, num_experts // D + r, policy_seconds=self.policy_seconds, **where)


def _run(hot: np.ndarray, pol: DynamicPolicies, name: str, spec: sim.SimSpec, record: bool = False) -> dict:
    return sim.simulate(hot, pol.build(name, spec, hot.shape[0]), spec, record=record)


def sweep(hot: np.ndarray, d: DynamicSpec, pol: DynamicPolicies, call_intervals: list[int]) -> pl.DataFrame:
    """DS-EPLB and moelab at each call interval (iterations): the PAR vs slots-moved frontier. Scores are
    against DS-EPLB at its configured call interval; windows stay as configured."""
    E = hot.shape[2]
    ref = _run(hot, pol, "DS-EPLB", d.sim_spec(pol, "DS-EPLB", E))
    rows = []
    for iv in call_intervals:
        runs = {name: _run(hot, pol, name, d.sim_spec(pol, name, E, call_interval=iv))
                for name in ("DS-EPLB", "moelab")}
        rows += [{"policy": name, "interval": iv, "mean_par": r["mean_par"], "transmit": r["transmit"],
                  "calls": r["calls"], "modelled_time": r["modelled_time"], "score_vs_eplb": sim.score(r, ref)}
                 for name, r in runs.items()]
    return pl.DataFrame(rows)


def capacity_sweep(hot: np.ndarray, d: DynamicSpec, pol: DynamicPolicies, sweep_devices: list[int],
                   sweep_redundant_slots: list[int]) -> pl.DataFrame:
    """Default, DS-EPLB and moelab on every (devices, redundant slots per device) pair, each scored against
    DS-EPLB on the same devices and slots; cadences and constants as configured. How much replication
    buys, and whether moelab's lead holds as the cluster grows. A device count that does not split the
    source's experts (16 devices for Mixtral's 8) is skipped for that source, as static placement does."""
    E = hot.shape[2]
    rows = []
    for D in sweep_devices:
        if E % D:
            continue
        for r in sweep_redundant_slots:
            S = E // D + r
            runs = {name: _run(hot, pol, name, d.sim_spec(pol, name, E, devices=D, redundant_slots=r))
                    for name in ("Default", "DS-EPLB", "moelab")}
            ref = runs["DS-EPLB"]
            rows += [{"policy": name, "sweep_devices": D, "redundant_slots": r, "slots_per_device": S,
                      "mean_par": x["mean_par"], "transmit": x["transmit"], "calls": x["calls"],
                      "modelled_time": x["modelled_time"], "score_vs_eplb": sim.score(x, ref)}
                     for name, x in runs.items()]
    schema = {"policy": pl.String, "sweep_devices": pl.Int64, "redundant_slots": pl.Int64,
              "slots_per_device": pl.Int64, "mean_par": pl.Float64, "transmit": pl.Int64, "calls": pl.Int64,
              "modelled_time": pl.Float64, "score_vs_eplb": pl.Float64}
    return pl.DataFrame(rows, schema=schema)  # no row when no device count splits the experts


ORACLE = "DS-EPLB oracle (bound)"


def run_policies(hot: np.ndarray, d: DynamicSpec, pol: DynamicPolicies, record: bool = False) -> dict[str, dict]:
    """The simulator's result per policy (``record``: with each run's sequence of redeployments)."""
    I, L, E = hot.shape
    d.check_experts(E)
    base = d.sim_spec(pol, "DS-EPLB", E)
    runs = {"Default": _run(hot, pol, "Default", base),
            "DS-EPLB": _run(hot, pol, "DS-EPLB", base, record)}
    if d.nodes > 1:
        runs["DS-EPLB hierarchical"] = sim.simulate(hot, pol.build("DS-EPLB", base, I, d.expert_groups, d.nodes),
                                                    base, record=record)
    runs["moelab"] = _run(hot, pol, "moelab", d.sim_spec(pol, "moelab", E), record)
    if d.oracle:
        runs[ORACLE] = _run(hot, pol, "DS-EPLB", d.sim_spec(pol, "DS-EPLB", E, oracle=True))
    return runs


def redeployments(runs: dict[str, dict]) -> pl.DataFrame:
    """Every recorded run's deployments: its starting table per layer (``iteration`` -1) and each layer's new
    table at the iteration it took effect, slots flattened device by device (-1: an empty slot). What the
    exports write for the engines; Default never redeploys and the oracle is a bound, so neither is here."""
    rows = []
    for policy, r in runs.items():
        if "changes" not in r:
            continue
        L, D, S = r["initial"].shape
        start = [(-1, layer, r["initial"][layer]) for layer in range(L)]
        for iteration, layer, table in start + list(r["changes"]):
            rows.append({"policy": policy, "iteration": int(iteration), "layer": int(layer), "devices": D,
                         "slots_per_device": S, "slots": np.asarray(table).ravel().astype(np.int32).tolist()})
    schema = {"policy": pl.String, "iteration": pl.Int64, "layer": pl.Int32, "devices": pl.Int32,
              "slots_per_device": pl.Int32, "slots": pl.List(pl.Int32)}
    return pl.DataFrame(rows, schema=schema)


def evaluate(hot: np.ndarray, d: DynamicSpec, pol: DynamicPolicies,
             runs: dict[str, dict] | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Returns (summary: one row per policy, timeline: PAR per iteration and policy, mean over layers), from
    ``runs`` (:func:`run_policies`) when given."""
    I = hot.shape[0]
    runs = run_policies(hot, d, pol) if runs is None else runs
    ref = runs["DS-EPLB"]
    summary = pl.DataFrame([{"policy": name, "mean_par": r["mean_par"], "transmit": r["transmit"],
                             "calls": r["calls"], "modelled_time": r["modelled_time"],
                             "score_vs_eplb": sim.score(r, ref)} for name, r in runs.items()])
    timeline = pl.concat([pl.DataFrame({"iteration": np.arange(I, dtype=np.int32),
                                        "par": r["par"].mean(1), "policy": name})
                          for name, r in runs.items()])
    return summary, timeline
