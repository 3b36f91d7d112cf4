"""The pinned dynamic-placement evaluation grid (``docs/stages/placement.md``).

Every cell is a fitted workload model (:mod:`moelab.placement.workload_fit`) at one EP size, one scale of its
rates of change (``drift_scale``: 1 as fitted, 0 frozen; an ablation) and one seed, with one redundant slot per device. In each cell Default, DS-EPLB (global) and moelab's
policy, as every dynamic evaluation runs them (:class:`moelab.placement.policy_specs.DynamicPolicies`), start
from the same contiguous placement; each is first called once its own interval has passed, and its time per
call delays its redeployment. The physical bound (:mod:`moelab.placement.bound`), the popularity oracle (a
reference) and the share of DS-EPLB's gap to each that a policy closes stand next to them. The config names
one tuning cell: the only one on which moelab's policy parameters may be chosen; every other cell is held out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from types import ModuleType

import numpy as np
import polars as pl

from moelab.placement import competition
from moelab.placement import simulator as sim
from moelab.placement.bound import par_bound
from moelab.placement.eplb import rebalance
from moelab.placement.hotness_model import HotnessModel
from moelab.placement.policy_specs import POLICY_NAMES as POLICIES
from moelab.placement.policy_specs import DynamicPolicies
from moelab.spec import ConfigSpec


@dataclass(frozen=True)
class CellSpec(ConfigSpec):
    """What one grid cell runs: config block ``placement.grid`` less the grid's axes (``GRID_AXES``), so that a
    change to the axes reruns only the cells it adds."""

    key = "placement.grid"
    layers: int | None  # None: the workload model's layers (fewer for a quick run)
    iterations: int | None  # None: the workload model's trace length
    # modelled seconds per call, per policy: {DS-EPLB: s, moelab: s, submission: s}, s a number or {ep: s}
    seconds_per_call: dict
    seconds_source: str  # where those seconds come from (a benchmark's median)
    iteration_seconds: float

    @classmethod
    def from_config(cls, block: dict, key: str | None = None) -> CellSpec:
        return super().from_config({k: v for k, v in block.items() if k not in GRID_AXES}, key)

    def __post_init__(self) -> None:
        def seconds_ok(v: object) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0

        def ok(per: object) -> bool:  # one number, or a non-empty {EP size: seconds}
            if isinstance(per, dict):
                return bool(per) and all(str(k).isdigit() and int(k) > 0 and seconds_ok(v) for k, v in per.items())
            return seconds_ok(per)

        if set(self.seconds_per_call) != set(TIMED) or not all(map(ok, self.seconds_per_call.values())):
            raise ValueError(f"seconds_per_call={self.seconds_per_call}: expected non-negative seconds for "
                             f"{', '.join(TIMED)}, each one number or one per EP size ({{32: 0.08, 64: 0.15}})")

    def seconds(self, policy: str, ep: int) -> float:
        """The modelled seconds per call of ``policy`` on ``ep`` devices (time per call grows with EP size)."""
        per = self.seconds_per_call[policy]
        if not isinstance(per, dict):
            return float(per)
        by_ep = {int(k): float(v) for k, v in per.items()}
        if ep not in by_ep:
            raise ValueError(f"placement.grid.seconds_per_call.{policy}: no time for EP{ep} (has EP "
                             f"{', '.join(map(str, sorted(by_ep)))})")
        return by_ep[ep]

    def seconds_text(self) -> str:
        """The modelled seconds per call, for captions: "DS-EPLB 0.015 s; moelab 0.078 s" (per EP where given)."""
        def one(per: object) -> str:
            if not isinstance(per, dict):
                return f"{float(per):g} s"
            return ", ".join(f"EP{int(k)} {float(v):g} s" for k, v in sorted(per.items(), key=lambda kv: int(kv[0])))
        return "; ".join(f"{name} {one(self.seconds_per_call[name])}" for name in TIMED)

    def model(self, fitted: HotnessModel, drift_scale: float) -> HotnessModel:
        m = fitted.scaled(drift_scale)
        return replace(m, layers=self.layers or m.layers, iterations=self.iterations or m.iterations)


CELL_NAME = re.compile(r"^(?P<workload>[^/]+)/ep(?P<ep>\d+)-drift(?P<drift>[0-9.]+)-seed(?P<seed>\d+)$")
TIMED = ("DS-EPLB", "moelab", "submission")  # moelab at its own cadence, and as the competition submission
GRID_AXES = ("workloads", "eps", "drift_scales", "seeds", "tuning")


@dataclass(frozen=True)
class GridSpec(ConfigSpec):
    """Config block ``placement.grid``: the axes, the tuning cell and (:class:`CellSpec`) what each cell runs."""

    key = "placement.grid"
    workloads: tuple[str, ...]  # fitted workload models (placement.workloads.models)
    eps: tuple[int, ...]
    drift_scales: tuple[float, ...]
    seeds: tuple[int, ...]
    tuning: dict  # {workload, ep, drift_scale, seed}: the one cell the policy may be tuned on
    cell: CellSpec

    @classmethod
    def from_config(cls, block: dict, key: str | None = None) -> GridSpec:
        cell = CellSpec.from_config(block, key)
        return super().from_config({**{k: block[k] for k in GRID_AXES if k in block}, "cell": cell}, key)

    def __post_init__(self) -> None:
        if set(self.tuning) != {"workload", "ep", "drift_scale", "seed"}:
            raise ValueError(f"tuning={self.tuning}: expected keys workload, ep, drift_scale, seed")
        if not self.workloads:
            raise ValueError("workloads: expected one or more fitted workload models")
        if (self.tuning["workload"] not in self.workloads or self.tuning["ep"] not in self.eps
                or self.tuning["drift_scale"] not in self.drift_scales or self.tuning["seed"] not in self.seeds):
            raise ValueError(f"tuning={self.tuning}: the tuning cell must be one of the grid's cells")
        if any(s < 0 for s in self.drift_scales):
            raise ValueError(f"drift_scales={list(self.drift_scales)}: expected non-negative scales")
        for policy in TIMED:  # every EP size has a time per call, before any job runs
            for ep in self.eps:
                self.cell.seconds(policy, ep)

    def cells(self, experts: dict[str, int]) -> list[str]:
        """Every cell's name, as its output files are named: ``{workload}/ep{ep}-drift{scale}-seed{seed}``, on
        the EP sizes that split the workload's ``experts`` (Qwen3's 128 experts: EP 32 to 128)."""
        return [f"{w}/ep{ep}-drift{drift:g}-seed{seed}" for w in self.workloads for ep in self.eps
                if experts[w] % ep == 0 for drift in self.drift_scales for seed in self.seeds]

    @staticmethod
    def cell_keys(name: str) -> dict:
        """A cell's name (:meth:`cells`) back to its keys: workload, ep, drift_scale, seed."""
        m = CELL_NAME.match(name)
        if m is None:
            raise ValueError(f"{name!r} is not a grid cell's name (workload/ep<E>-drift<x>-seed<N>)")
        return {"workload": m["workload"], "ep": int(m["ep"]), "drift_scale": float(m["drift"]),
                "seed": int(m["seed"])}

    def roles(self, table: pl.DataFrame) -> pl.DataFrame:
        """``table`` with a ``role`` column: "tuning" for the tuning cell, "held out" for every other."""
        t = self.tuning
        tuning = ((pl.col("workload") == t["workload"]) & (pl.col("ep") == t["ep"])
                  & (pl.col("drift_scale") == float(t["drift_scale"])) & (pl.col("seed") == t["seed"]))
        return table.with_columns(role=pl.when(tuning).then(pl.lit("tuning")).otherwise(pl.lit("held out")))


def sim_specs(grid: CellSpec, pol: DynamicPolicies, experts: int, ep: int, measured: bool,
              transmit_scale: float = 1.0, full_layers: int | None = None) -> dict[str, sim.SimSpec]:
    """The simulator's spec per policy in a cell on ``ep`` devices with one redundant slot each: each policy
    on its own cadence (first called once its own interval has passed, so moelab, called more often, starts
    earlier), its seconds per call delaying its redeployments. ``measured``: delays from measured times
    instead of the config's. ``transmit_scale``: see :meth:`DynamicPolicies.sim_spec`; ``full_layers``: the
    model's layers when fewer run (each redeployment paced as theirs, :func:`moelab.placement.simulator.paced`).

    Next to them, the DS-EPLB a user could configure instead (:data:`EPLB_VARIANTS`): every 256 to 4,096
    iterations on that many past iterations; at moelab's call interval on DS-EPLB's window; and first called
    when moelab first is, then at DS-EPLB's own interval (what the early start alone is worth)."""
    S = experts // ep + 1
    common = dict(iteration_seconds=grid.iteration_seconds, measured_delay=measured, transmit_scale=transmit_scale,
                  full_layers=full_layers)
    specs = {name: pol.sim_spec(name, ep, S, policy_seconds=0.0 if name == "Default" else grid.seconds(name, ep),
                                **common) for name in POLICIES}
    eplb = specs["DS-EPLB"]
    for iv in EPLB_INTERVALS:
        specs[f"DS-EPLB@{iv}"] = replace(eplb, interval=iv, window=iv)
    specs["DS-EPLB at moelab's cadence"] = replace(eplb, interval=pol.moelab.call_interval)
    specs["DS-EPLB early"] = replace(eplb, first_call=pol.moelab.call_interval)
    return specs


EPLB_INTERVALS = (256, 512, 1024, 2048, 4096)
# DS-EPLB as a user could configure it, each a row of the grid next to the three policies (strongest: least time)
EPLB_VARIANTS = (*(f"DS-EPLB@{iv}" for iv in EPLB_INTERVALS), "DS-EPLB at moelab's cadence", "DS-EPLB early")


def check_no_oracle(specs: dict[str, sim.SimSpec]) -> None:
    """The grid scores policies that see only the past: one fed the coming window is a bound, labelled as
    such elsewhere (``placement.dynamic.oracle``), never a row here."""
    for name, s in specs.items():
        if s.oracle:
            raise ValueError(f"{name}: a policy that sees the coming window is an oracle, not a grid policy")


def evaluate_cell(fitted: HotnessModel, grid: CellSpec, pol: DynamicPolicies, ep: int, drift_scale: float,
                  seed: int, delays: tuple[str, ...] = ("modelled",),
                  submission: ModuleType | None = None, workload: str = "") -> dict[str, pl.DataFrame]:
    """One grid cell: per kind of delay, a row per policy. ``delays``: "modelled" (each redeployment waits for the
    config's seconds per call: deterministic) and/or "measured" (for the policy's measured wall time: for
    ``results/bench/``). The hotness, the bound and Default (which never calls) are computed once.
    ``submission``: moelab's written submission file, loaded (:func:`competition_runs`)."""
    model = grid.model(fitted, drift_scale)
    keys = {"workload": workload, "ep": ep, "drift_scale": float(drift_scale), "seed": seed}
    hot, expected = model.generate_with_expected(seed)
    return evaluate_hotness(hot, grid, pol, ep, delays, keys, expected, submission, full_layers=fitted.layers)


def competition_runs(hot: np.ndarray, grid: CellSpec, pol: DynamicPolicies, ep: int, submission: ModuleType,
                     measured: bool = False, default: dict | None = None,
                     full_layers: int | None = None) -> dict[str, dict]:
    """The competition's score, as the competition computes it (:mod:`moelab.placement.competition`): each
    policy in the competition's loop, called at the evaluator's cadence (DS-EPLB's call interval, for every
    policy: a submission does not choose when it is called), from the competition's initial tables, each call
    delayed by ``ceil(seconds / 0.08)`` of the config's seconds per call (``measured``: of its measured time).
    moelab is ``submission``, the written file a user would upload, reset before the case. ``default``: Default's
    run when already taken (it calls nothing, so it is the same for every kind of delay). ``full_layers``: the
    model's layers when ``hot`` holds fewer: each redeployment takes as long as on the full model
    (:func:`moelab.placement.simulator.paced`)."""
    interval = pol.eplb.call_interval
    served = np.where(hot == 0, 1.0, hot).astype(np.float64)  # once for the three runs, as the competition serves it

    def delay(name: str):  # noqa: ANN202 - moelab's time is the submission's (placement.submission)
        return None if measured else (lambda call, seconds: competition.delay_iterations(grid.seconds(name, ep)))

    submission.reset()
    submission.stand_for(full_layers)  # the harness's: a quick run's layers stand for the model's (the pays test)
    return {"Default": default or competition.simulate(served, None, interval, devices=ep),
            "DS-EPLB": competition.simulate(served, lambda w: competition.ds_eplb(w, ep, ep), interval, devices=ep,
                                            delay=delay("DS-EPLB"), full_layers=full_layers),
            "moelab": competition.simulate(served, lambda w: submission.rebalance(w, ep, ep), interval, devices=ep,
                                           delay=delay("submission"), full_layers=full_layers)}


ORACLE_STRIDE = 16  # the popularity oracle is placed at every 16th iteration (EPLB per iteration is costly)


def popularity_oracle(hot: np.ndarray, expected: np.ndarray, ep: int, start: int, zero_to_one: bool = True,
                      stride: int = ORACLE_STRIDE) -> float:
    """A reference, not a bound: mean PAR from iteration ``start`` on of DS-EPLB's placement of each
    iteration's *expected* counts (the model's popularity, known exactly, re-placed every iteration at no
    cost and no delay), served the iteration's sampled counts. What is left above 1 is the sampling noise,
    which no placement decided before the tokens arrive can follow, plus DS-EPLB's packing itself; every
    16th iteration (a sample of the span)."""
    I, L, E = hot.shape
    S = E // ep + 1
    out = []
    for i in range(start, I, stride):
        table, _, _ = rebalance(expected[i], ep * S, 1, 1, ep)
        h = np.where(hot[i] == 0, 1.0, hot[i]) if zero_to_one else hot[i]
        out.append(sim.par(h.astype(np.float64), table.reshape(L, ep, S)).mean())
    return float(np.mean(out)) if out else float("nan")


def evaluate_hotness(hot: np.ndarray, grid: CellSpec, pol: DynamicPolicies, ep: int,
                     delays: tuple[str, ...] = ("modelled",), keys: dict | None = None,
                     expected: np.ndarray | None = None, submission: ModuleType | None = None,
                     full_layers: int | None = None) -> dict[str, pl.DataFrame]:
    """The grid's policies, bound and scores on one hotness ``[I, L, E]`` at ``ep`` devices (a cell of the
    workload model, or a user's imported load): per kind of delay, a row per policy, led by ``keys``.
    ``expected`` (the model's noise-free counts, a model cell only) adds the popularity oracle's reference PAR
    and the share of DS-EPLB's gap to it that each policy closes (from DS-EPLB's first call on).

    Each row scores the policy three ways: (a) with ``submission`` (moelab's written submission, loaded),
    ``competition_score``: every policy at the evaluator's cadence in the competition's own loop
    (:func:`competition_runs`), what the competition would score; (b) ``score_vs_eplb``: each policy at its own
    cadence in moelab's loop against DS-EPLB at its configured cadence (a serving choice: moelab is called far
    more often than DS-EPLB); (c) ``score_vs_strongest``: the same run against the strongest DS-EPLB a user
    could configure (``strongest_eplb``: the least modelled time among DS-EPLB and its variants,
    :data:`EPLB_VARIANTS`, each a row with ``eplb_variant`` set). ``gb_moved``: the slots moved as gigabytes
    of expert weights on the full model.

    ``full_layers``: the model's layers when the cell runs fewer (a quick run): both scores then count each
    policy's transmit scaled to the full model (``transmit_scale`` = full / run layers), since the mean PAR of
    the layers run stands for all of them while their transmit is only their share; ``transmit`` stays the
    slots moved in the layers run. At its own cadence moelab weighs a move at that scaled cost too; the written
    submission cannot be told (the competition's API has no such argument), so in a quick run it moves more
    than the scaled score rewards: the competition's score is on the competition's scale in a full-layer grid
    (config/full.yaml) only."""
    I, L, E = hot.shape
    keys = {"ep": ep} if keys is None else keys
    scale = (full_layers or L) / L

    def time(r: dict) -> float:  # the competition's modelled time, its constants, transmit over the full model
        return competition.modelled_time(r["mean_par"], r["transmit"] * scale)

    paced_as = full_layers if full_layers and full_layers > L else None
    specs = {kind: sim_specs(grid, pol, E, ep, kind == "measured", scale, paced_as) for kind in delays}
    for s in specs.values():
        check_no_oracle(s)
    zero_to_one = pol.score.zero_to_one
    bound = par_bound(hot, ep, E // ep + 1, zero_to_one)
    # "after the first call" is one span for every policy: from DS-EPLB's first call on, so that it compares
    # placements alone, without the warm-up that a policy called more often than DS-EPLB also cuts
    first = min(pol.eplb.call_interval, I - 1)
    bound_par, bound_after = float(bound.mean()), float(bound[first:].mean())
    oracle = (popularity_oracle(hot, expected, ep, first, zero_to_one)
              if expected is not None else float("nan"))
    default = sim.simulate(hot, None, next(iter(specs.values()))["Default"])
    out, comp = {}, None
    for kind, sp in specs.items():
        runs = {"Default": default, **{name: sim.simulate(hot, pol.build(name, sp[name], I), sp[name])
                                       for name in ("DS-EPLB", "moelab")},
                **{name: sim.simulate(hot, pol.build("DS-EPLB", sp[name], I), sp[name]) for name in EPLB_VARIANTS}}
        # the strongest DS-EPLB a user could configure for this cell: the least modelled time of its variants
        strongest = min(("DS-EPLB", *EPLB_VARIANTS), key=lambda n: (runs[n]["modelled_time"], n))
        comp = (competition_runs(hot, grid, pol, ep, submission, kind == "measured",
                                 comp["Default"] if comp else None, full_layers) if submission else None)
        ref = runs["DS-EPLB"]
        gap = ref["mean_par"] - bound_par
        ref_after = float(ref["par"][first:].mean())
        rows = []
        for name in (*POLICIES, *EPLB_VARIANTS):
            r, s = runs[name], sp[name]
            after = float(r["par"][first:].mean())
            seconds = (r["policy_wall_s"] / r["calls"] if kind == "measured" and r["calls"] else
                       0.0 if name == "Default" else grid.seconds("moelab" if name == "moelab" else "DS-EPLB", ep))
            rows.append({**keys, "policy": name, "eplb_variant": name in EPLB_VARIANTS, "user_policy": False,
                         "first_call": None if name == "Default" else (s.interval if s.first_call is None
                                                                       else s.first_call),
                         "call_interval": None if name == "Default" else s.interval,
                         "mean_par": r["mean_par"], "mean_par_after_first_call": after,
                         "bound_par": bound_par, "bound_par_after_first_call": bound_after,
                         "transmit": r["transmit"], "gb_moved": r["transmit"] * scale * pol.score.slot_bytes / 1e9,
                         "calls": r["calls"], "delay_iterations": r["delay_iterations"],
                         "seconds_per_call": seconds, "transmit_scale": scale, "modelled_time": r["modelled_time"],
                         "score_vs_eplb": sim.score(r, ref), "strongest_eplb": strongest,
                         "score_vs_strongest": sim.score(r, runs[strongest]),
                         "gap_closed": (ref["mean_par"] - r["mean_par"]) / gap if gap > 0 else float("nan"),
                         "oracle_par": oracle,
                         "oracle_gap_closed": ((ref_after - after) / (ref_after - oracle)
                                               if ref_after > oracle else float("nan")),
                         **_competition_columns(comp, name, time)})
        out[kind] = pl.DataFrame(rows)
    return out


def _competition_columns(comp: dict[str, dict] | None, name: str, time) -> dict:  # noqa: ANN001
    """A row's competition columns (NaN without a submission, or for a DS-EPLB variant, which the competition
    does not run): mean PAR, slots moved, calls and the score (from ``time``: the competition's modelled time,
    transmit scaled to the full model)."""
    if comp is None or name not in comp:
        return {"competition_mean_par": float("nan"), "competition_transmit": None, "competition_calls": None,
                "competition_score": float("nan")}
    r = comp[name]
    return {"competition_mean_par": r["mean_par"], "competition_transmit": r["transmit"],
            "competition_calls": r["calls"], "competition_score": 100.0 * time(comp["DS-EPLB"]) / time(r)}


def summary(grid_table: pl.DataFrame) -> pl.DataFrame:
    """Per policy, workload, rate scale and EP size (and over all EP sizes): (a) the competition's score (every
    policy at the evaluator's cadence, the competition's loop): mean and worst; (b) the score against DS-EPLB at
    each policy's own cadence: mean over seeds with its spread and worst cell, the cells ahead of DS-EPLB; (c) the
    score against the strongest DS-EPLB a user could configure: mean and worst; then mean PAR (whole trace and
    after the first call), the bound, slots and gigabytes moved, seconds per call, the gap closed and the
    popularity oracle. DS-EPLB's variants are rows of the grid's table, not of this summary."""
    aggs = [pl.col("competition_score").mean().alias("mean_competition_score"),
            pl.col("competition_score").min().alias("worst_competition_score"),
            pl.col("score_vs_eplb").mean().alias("mean_score"), pl.col("score_vs_eplb").std().alias("score_std"),
            pl.col("score_vs_eplb").min().alias("worst_score"),
            (pl.col("score_vs_eplb") > 100).sum().alias("cells_ahead"), pl.len().alias("cells"),
            pl.col("score_vs_strongest").mean().alias("mean_score_vs_strongest"),
            pl.col("score_vs_strongest").min().alias("worst_score_vs_strongest"),
            pl.col("mean_par").mean(), pl.col("mean_par_after_first_call").mean(), pl.col("bound_par").mean(),
            pl.col("transmit").mean(), pl.col("gb_moved").mean(), pl.col("seconds_per_call").mean(),
            pl.col("gap_closed").mean(), pl.col("oracle_par").mean(), pl.col("oracle_gap_closed").mean()]
    main = grid_table.filter(~pl.col("eplb_variant"))
    groups = ("policy", "workload", "drift_scale")
    per_ep = main.group_by(*groups, "ep").agg(aggs).with_columns(pl.col("ep").cast(pl.Utf8))
    over = main.group_by(*groups).agg(aggs).with_columns(ep=pl.lit("all"))
    return (pl.concat([per_ep, over.select(per_ep.columns)])
            .with_columns(pl.col("ep").cast(pl.Int64, strict=False).fill_null(1 << 30).alias("_order"))
            .sort(*groups, "_order").drop("_order"))


KEYS = ["workload", "ep", "drift_scale", "seed"]


def cell_name(r: dict) -> str:
    return f"{r['workload']} EP{r['ep']} x{r['drift_scale']:g} seed {r['seed']}"


def verdict(grid_table: pl.DataFrame) -> str:
    """Where moelab wins and where it does not, in words, three ways: (a) the competition's score, (b) at its own
    cadence against DS-EPLB at its configured one, the cells where it is not ahead and those where its
    placements alone, from DS-EPLB's first call on, have a higher PAR than DS-EPLB's, (c) against the strongest
    DS-EPLB a user could configure, the cells where it is not ahead."""
    ours = grid_table.filter(pl.col("policy") == "moelab").sort(KEYS)
    base = grid_table.filter(pl.col("policy") == "DS-EPLB").select(
        *KEYS, pl.col("mean_par_after_first_call").alias("eplb_after"))
    behind = ours.filter(pl.col("score_vs_eplb") <= 100)
    comp = ours["competition_score"] if "competition_score" in ours.columns else pl.Series([float("nan")])
    text = ("" if comp.is_nan().all() else
            f"(a) the competition's score (moelab, as a submission, called at DS-EPLB's cadence in the competition's "
            f"loop): mean {comp.mean():.1f}, worst {comp.min():.1f}, above 100 in {int((comp > 100).sum())} of "
            f"{ours.height} cells; (b) at its own cadence against DS-EPLB at its configured one (a serving choice): ")
    text += (f"moelab ahead of DS-EPLB (score above 100) in {ours.height - behind.height} of {ours.height} cells"
             + ("" if behind.is_empty() else "; not ahead in " + ", ".join(
                 f"{cell_name(r)} ({r['score_vs_eplb']:.1f})" for r in behind.iter_rows(named=True))))
    worse = (ours.join(base, on=KEYS).filter(pl.col("mean_par_after_first_call") > pl.col("eplb_after"))
             .sort(KEYS))  # a join's row order is not guaranteed: the caption's bytes must be
    if worse.is_empty():
        text += "; its PAR from DS-EPLB's first call on is not above DS-EPLB's in any cell"
    else:
        text += (f"; its PAR from DS-EPLB's first call on is above DS-EPLB's in {worse.height} of {ours.height} "
                 f"cells (a score above 100 there comes from starting earlier and moving fewer slots): "
                 + ", ".join(f"{cell_name(r)} ({r['mean_par_after_first_call']:.3f} vs {r['eplb_after']:.3f})"
                             for r in worse.iter_rows(named=True)))
    if "score_vs_strongest" in ours.columns:
        strong = ours["score_vs_strongest"]
        lost = ours.filter(pl.col("score_vs_strongest") <= 100)
        text += (f"; (c) against the strongest DS-EPLB a user could configure in each cell: mean {strong.mean():.1f}, "
                 f"worst {strong.min():.1f}, ahead in {ours.height - lost.height} of {ours.height} cells"
                 + ("" if lost.is_empty() else "; not ahead in " + ", ".join(
                     f"{cell_name(r)} ({r['score_vs_strongest']:.1f} vs {r['strongest_eplb']})"
                     for r in lost.iter_rows(named=True))))
    return text


def evaluate_import(hot: np.ndarray, grid: CellSpec, pol: DynamicPolicies, eps: list[int],
                    workload: str, submission: ModuleType | None = None) -> dict[str, pl.DataFrame]:
    """A user's imported hotness through the grid's policies at every grid EP size that splits its experts
    (and leaves at least one expert per device): the same rows as a grid cell, led by ``workload`` and ``ep``.
    A load is what it is: it has no drift scale and no seed, and nothing is tuned on it."""
    E = hot.shape[2]
    usable = [ep for ep in eps if E % ep == 0 and ep <= E]
    if not usable:
        raise ValueError(f"{workload}: none of the grid's EP sizes {list(eps)} divides its {E} experts")
    out: dict[str, list[pl.DataFrame]] = {"modelled": [], "measured": []}
    for ep in usable:
        for kind, frame in evaluate_hotness(hot, grid, pol, ep, ("modelled", "measured"),
                                            {"workload": workload, "ep": ep}, submission=submission).items():
            out[kind].append(frame)
    return {kind: pl.concat(frames) for kind, frames in out.items()}


def import_summary(table: pl.DataFrame) -> pl.DataFrame:
    """Per imported workload, EP size and policy (DS-EPLB's variants included): the competition's score, the
    score vs DS-EPLB at each policy's own cadence and vs the strongest DS-EPLB, PAR (whole trace, after the first
    call), the bound, slots and gigabytes moved and the gap closed."""
    return table.select("workload", "ep", "policy", "competition_score", "score_vs_eplb", "score_vs_strongest",
                        "strongest_eplb", "mean_par", "mean_par_after_first_call", "bound_par", "transmit",
                        "gb_moved", "calls", "gap_closed").sort("workload", "ep", "policy")
