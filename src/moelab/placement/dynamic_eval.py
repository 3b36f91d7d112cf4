"""Dynamic placement on a trace's hotness: Default, DS-EPLB (global, and hierarchical when the config has
nodes) and moelab's policy side by side, with DS-EPLB fed the coming window as a bound; scored with the
competition's modelled time (constants from the config's ``placement.dynamic`` block: :class:`DynamicSpec`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from moelab.placement import policies
from moelab.placement import simulator as sim
from moelab.spec import ConfigSpec


@dataclass(frozen=True)
class DynamicSpec(ConfigSpec):
    """Config block ``placement.dynamic``: the devices, the policies' cadences and the score's constants."""

    key = "placement.dynamic"
    devices: int
    redundant_slots: int
    eplb_interval: int
    eplb_window: int
    interval: int
    window: int
    halflife: float
    max_moves: int
    zero_to_one: bool
    par_weight: float
    slot_bytes: float
    bandwidth: float
    policy_seconds: float
    nodes: int
    expert_groups: int
    oracle: bool

    def __post_init__(self) -> None:
        if self.devices % self.nodes or self.expert_groups % self.nodes:
            raise ValueError(f"nodes={self.nodes} must divide devices={self.devices} and "
                             f"expert_groups={self.expert_groups}")

    def score_constants(self) -> dict:
        """The score's constants, which the serving-scale grid shares (its policy settings are its own)."""
        return {"zero_to_one": self.zero_to_one, "par_weight": self.par_weight, "slot_bytes": self.slot_bytes,
                "bandwidth": self.bandwidth}

    def check_experts(self, num_experts: int) -> None:
        """The devices and the expert groups must split a trace's experts evenly."""
        if num_experts % self.devices or num_experts % self.expert_groups:
            raise ValueError(f"{self.key}: devices={self.devices} and expert_groups={self.expert_groups} must "
                             f"divide the {num_experts} experts")

    def sim_spec(self, num_experts: int, devices: int | None = None, redundant_slots: int | None = None,
                 **timing: object) -> sim.SimSpec:
        """The simulator's spec on ``devices`` (default: this block's) with the score's constants."""
        D = self.devices if devices is None else devices
        r = self.redundant_slots if redundant_slots is None else redundant_slots
        return sim.SimSpec(D, num_experts // D + r, zero_to_one=self.zero_to_one, par_weight=self.par_weight,
                           slot_bytes=self.slot_bytes, bandwidth=self.bandwidth, policy_seconds=self.policy_seconds,
                           **timing)

    def eplb(self, num_experts: int, interval: int | None = None, **where: object) -> sim.SimSpec:
        """DS-EPLB's cadence: its window, called every ``eplb_interval`` (or ``interval``)."""
        return self.sim_spec(num_experts, window=self.eplb_window,
                             interval=self.eplb_interval if interval is None else interval, **where)

    def ours(self, num_experts: int, interval: int | None = None, **where: object) -> sim.SimSpec:
        """moelab's cadence: its own window and interval, first called once DS-EPLB's window has passed."""
        return self.sim_spec(num_experts, window=self.window, first_call=self.eplb_window,
                             interval=self.interval if interval is None else interval, **where)

    def moelab(self, spec: sim.SimSpec, iterations: int) -> sim.Policy:
        return policies.moelab_policy(spec, total_iterations=iterations, halflife=self.halflife,
                                      max_moves=self.max_moves)


def sweep(hot: np.ndarray, d: DynamicSpec, sweep_intervals: list[int]) -> pl.DataFrame:
    """DS-EPLB and moelab at each call interval (iterations): the PAR vs slots-moved frontier. Scores are
    against DS-EPLB at its pinned ``eplb_interval``; windows stay as configured."""
    I, L, E = hot.shape
    pinned = d.eplb(E)
    ref = sim.simulate(hot, policies.eplb_policy(pinned), pinned)
    rows = []
    for iv in sweep_intervals:
        eplb, ours = d.eplb(E, interval=iv), d.ours(E, interval=iv)
        runs = {"DS-EPLB": sim.simulate(hot, policies.eplb_policy(eplb), eplb),
                "moelab": sim.simulate(hot, d.moelab(ours, I), ours)}
        rows += [{"policy": name, "interval": iv, "mean_par": r["mean_par"], "transmit": r["transmit"],
                  "calls": r["calls"], "modelled_time": r["modelled_time"], "score_vs_eplb": sim.score(r, ref)}
                 for name, r in runs.items()]
    return pl.DataFrame(rows)


def capacity_sweep(hot: np.ndarray, d: DynamicSpec, sweep_devices: list[int],
                   sweep_redundant_slots: list[int]) -> pl.DataFrame:
    """Default, DS-EPLB and moelab on every (devices, redundant slots per device) pair, each scored against
    DS-EPLB on the same devices and slots; cadences and constants as configured. How much replication
    buys, and whether moelab's lead holds as the cluster grows. A device count that does not split the
    source's experts (16 devices for Mixtral's 8) is skipped for that source, as static placement does."""
    I, L, E = hot.shape
    rows = []
    for D in sweep_devices:
        if E % D:
            continue
        for r in sweep_redundant_slots:
            S = E // D + r
            base = d.eplb(E, devices=D, redundant_slots=r)
            ours = d.ours(E, devices=D, redundant_slots=r)
            runs = {"Default": sim.simulate(hot, None, base),
                    "DS-EPLB": sim.simulate(hot, policies.eplb_policy(base), base),
                    "moelab": sim.simulate(hot, d.moelab(ours, I), ours)}
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


def run_policies(hot: np.ndarray, d: DynamicSpec, record: bool = False) -> dict[str, dict]:
    """The simulator's result per policy (``record``: with each run's sequence of redeployments)."""
    I, L, E = hot.shape
    d.check_experts(E)
    nodes, groups = d.nodes, d.expert_groups
    base, ours = d.eplb(E), d.ours(E)
    runs = {
        "Default": sim.simulate(hot, None, base),
        "DS-EPLB": sim.simulate(hot, policies.eplb_policy(base), base, record=record),
        **({"DS-EPLB hierarchical": sim.simulate(hot, policies.eplb_policy(base, groups, nodes), base,
                                                 record=record)} if nodes > 1 else {}),
        "moelab": sim.simulate(hot, d.moelab(ours, I), ours, record=record),
    }
    if d.oracle:
        oracle = d.eplb(E, oracle=True)
        runs[ORACLE] = sim.simulate(hot, policies.eplb_policy(oracle), oracle)
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


def evaluate(hot: np.ndarray, d: DynamicSpec,
             runs: dict[str, dict] | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Returns (summary: one row per policy, timeline: PAR per iteration and policy, mean over layers), from
    ``runs`` (:func:`run_policies`) when given."""
    I = hot.shape[0]
    runs = run_policies(hot, d) if runs is None else runs
    ref = runs["DS-EPLB"]
    summary = pl.DataFrame([{"policy": name, "mean_par": r["mean_par"], "transmit": r["transmit"],
                             "calls": r["calls"], "modelled_time": r["modelled_time"],
                             "score_vs_eplb": sim.score(r, ref)} for name, r in runs.items()])
    timeline = pl.concat([pl.DataFrame({"iteration": np.arange(I, dtype=np.int32),
                                        "par": r["par"].mean(1), "policy": name})
                          for name, r in runs.items()])
    return summary, timeline
