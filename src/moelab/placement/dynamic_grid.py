"""The pinned dynamic-placement evaluation grid (``docs/stages/placement.md``).

Every cell is the calibrated hotness model (:mod:`moelab.placement.calibration`) at one EP size, one drift
scale and one seed, with one redundant slot per device. In each cell Default, DS-EPLB (global) and moelab's
policy, as every dynamic evaluation runs them (:class:`moelab.placement.policy_specs.DynamicPolicies`), start
from the same contiguous placement; each is first called once its own interval has passed, and its time per
call delays its redeployment. The physical bound (:mod:`moelab.placement.bound`), the popularity oracle (a
reference) and the share of DS-EPLB's gap to each that a policy closes stand next to them. The config names
one tuning cell: the only one on which moelab's policy parameters may be chosen; every other cell is held out.
"""

from __future__ import annotations

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
    layers: int | None  # None: the calibrated model's layers (fewer for a quick run)
    iterations: int | None  # None: the calibrated model's trace length
    seconds_per_call: dict  # modelled seconds per call, per policy: {DS-EPLB: s, moelab: s}, s a number or {ep: s}
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

        if set(self.seconds_per_call) != {"DS-EPLB", "moelab"} or not all(map(ok, self.seconds_per_call.values())):
            raise ValueError(f"seconds_per_call={self.seconds_per_call}: expected non-negative seconds for "
                             f"DS-EPLB and moelab, each one number or one per EP size ({{32: 0.08, 64: 0.15}})")

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
        return "; ".join(f"{name} {one(self.seconds_per_call[name])}" for name in ("DS-EPLB", "moelab"))

    def model(self, calibrated: HotnessModel, drift_scale: float) -> HotnessModel:
        m = calibrated.scaled(drift_scale)
        return replace(m, layers=self.layers or m.layers, iterations=self.iterations or m.iterations)


GRID_AXES = ("eps", "drift_scales", "seeds", "tuning")


@dataclass(frozen=True)
class GridSpec(ConfigSpec):
    """Config block ``placement.grid``: the axes, the tuning cell and (:class:`CellSpec`) what each cell runs."""

    key = "placement.grid"
    eps: tuple[int, ...]
    drift_scales: tuple[float, ...]
    seeds: tuple[int, ...]
    tuning: dict  # {ep, drift_scale, seed}: the one cell the policy may be tuned on
    cell: CellSpec

    @classmethod
    def from_config(cls, block: dict, key: str | None = None) -> GridSpec:
        cell = CellSpec.from_config(block, key)
        return super().from_config({**{k: block[k] for k in GRID_AXES if k in block}, "cell": cell}, key)

    def __post_init__(self) -> None:
        if set(self.tuning) != {"ep", "drift_scale", "seed"}:
            raise ValueError(f"tuning={self.tuning}: expected keys ep, drift_scale, seed")
        if (self.tuning["ep"] not in self.eps or self.tuning["drift_scale"] not in self.drift_scales
                or self.tuning["seed"] not in self.seeds):
            raise ValueError(f"tuning={self.tuning}: the tuning cell must be one of the grid's cells")
        if any(s < 0 for s in self.drift_scales):
            raise ValueError(f"drift_scales={list(self.drift_scales)}: expected non-negative scales")
        for policy in ("DS-EPLB", "moelab"):  # every EP size has a time per call, before any job runs
            for ep in self.eps:
                self.cell.seconds(policy, ep)

    def cells(self) -> list[str]:
        """Every cell's name, as its output files are named: ``ep{ep}-drift{scale}-seed{seed}``."""
        return [f"ep{ep}-drift{drift:g}-seed{seed}" for ep in self.eps for drift in self.drift_scales
                for seed in self.seeds]

    def is_tuning(self, ep: int, drift_scale: float, seed: int) -> bool:
        return (ep, drift_scale, seed) == (self.tuning["ep"], self.tuning["drift_scale"], self.tuning["seed"])

    def roles(self, table: pl.DataFrame) -> pl.DataFrame:
        """``table`` with a ``role`` column: "tuning" for the tuning cell, "held out" for every other."""
        t = self.tuning
        tuning = ((pl.col("ep") == t["ep"]) & (pl.col("drift_scale") == float(t["drift_scale"]))
                  & (pl.col("seed") == t["seed"]))
        return table.with_columns(role=pl.when(tuning).then(pl.lit("tuning")).otherwise(pl.lit("held out")))


def sim_specs(grid: CellSpec, pol: DynamicPolicies, experts: int, ep: int, measured: bool,
              transmit_scale: float = 1.0) -> dict[str, sim.SimSpec]:
    """The simulator's spec per policy in a cell on ``ep`` devices with one redundant slot each: each policy
    on its own cadence (first called once its own interval has passed, so moelab, called more often, starts
    earlier), its seconds per call delaying its redeployments. ``measured``: delays from measured times
    instead of the config's. ``transmit_scale``: see :meth:`DynamicPolicies.sim_spec`."""
    S = experts // ep + 1
    common = dict(iteration_seconds=grid.iteration_seconds, measured_delay=measured, transmit_scale=transmit_scale)
    return {name: pol.sim_spec(name, ep, S, policy_seconds=0.0 if name == "Default" else grid.seconds(name, ep),
                               **common) for name in POLICIES}


def check_no_oracle(specs: dict[str, sim.SimSpec]) -> None:
    """The grid scores policies that see only the past: one fed the coming window is a bound, labelled as
    such elsewhere (``placement.dynamic.oracle``), never a row here."""
    for name, s in specs.items():
        if s.oracle:
            raise ValueError(f"{name}: a policy that sees the coming window is an oracle, not a grid policy")


def evaluate_cell(calibrated: HotnessModel, grid: CellSpec, pol: DynamicPolicies, ep: int, drift_scale: float,
                  seed: int, delays: tuple[str, ...] = ("modelled",),
                  submission: ModuleType | None = None) -> dict[str, pl.DataFrame]:
    """One grid cell: per kind of delay, a row per policy. ``delays``: "modelled" (each redeployment waits for the
    config's seconds per call: deterministic) and/or "measured" (for the policy's measured wall time: for
    ``results/bench/``). The hotness, the bound and Default (which never calls) are computed once.
    ``submission``: moelab's written submission file, loaded (:func:`competition_runs`)."""
    model = grid.model(calibrated, drift_scale)
    keys = {"ep": ep, "drift_scale": float(drift_scale), "seed": seed}
    hot, expected = model.generate_with_expected(seed)
    return evaluate_hotness(hot, grid, pol, ep, delays, keys, expected, submission, full_layers=calibrated.layers)


def competition_runs(hot: np.ndarray, grid: CellSpec, pol: DynamicPolicies, ep: int, submission: ModuleType,
                     measured: bool = False, default: dict | None = None) -> dict[str, dict]:
    """The competition's score, as the competition computes it (:mod:`moelab.placement.competition`): each
    policy in the competition's loop, called at the evaluator's cadence (DS-EPLB's call interval, for every
    policy: a submission does not choose when it is called), from the competition's initial tables, each call
    delayed by ``ceil(seconds / 0.08)`` of the config's seconds per call (``measured``: of its measured time).
    moelab is ``submission``, the written file a user would upload, reset before the case. ``default``: Default's
    run when already taken (it calls nothing, so it is the same for every kind of delay)."""
    interval = pol.eplb.call_interval
    served = np.where(hot == 0, 1.0, hot).astype(np.float64)  # once for the three runs, as the competition serves it

    def delay(name: str):  # noqa: ANN202
        return None if measured else (lambda call, seconds: competition.delay_iterations(grid.seconds(name, ep)))

    submission.reset()
    return {"Default": default or competition.simulate(served, None, interval, devices=ep),
            "DS-EPLB": competition.simulate(served, lambda w: competition.ds_eplb(w, ep, ep), interval, devices=ep,
                                            delay=delay("DS-EPLB")),
            "moelab": competition.simulate(served, lambda w: submission.rebalance(w, ep, ep), interval, devices=ep,
                                           delay=delay("moelab"))}


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
    calibrated model, or a user's imported load): per kind of delay, a row per policy, led by ``keys``.
    ``expected`` (the model's noise-free counts, a model cell only) adds the popularity oracle's reference PAR
    and the share of DS-EPLB's gap to it that each policy closes (from DS-EPLB's first call on).

    Each row scores the policy two ways: ``score_vs_eplb``, each policy at its own cadence in moelab's loop (a
    serving choice: moelab is called far more often than DS-EPLB), and, with ``submission`` (moelab's written
    submission, loaded), ``competition_score``: every policy at the evaluator's cadence in the competition's
    own loop (:func:`competition_runs`), what the competition would score.

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

    specs = {kind: sim_specs(grid, pol, E, ep, kind == "measured", scale) for kind in delays}
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
                                       for name in ("DS-EPLB", "moelab")}}
        comp = (competition_runs(hot, grid, pol, ep, submission, kind == "measured",
                                 comp["Default"] if comp else None) if submission else None)
        ref = runs["DS-EPLB"]
        gap = ref["mean_par"] - bound_par
        ref_after = float(ref["par"][first:].mean())
        rows = []
        for name in POLICIES:
            r = runs[name]
            after = float(r["par"][first:].mean())
            seconds = (r["policy_wall_s"] / r["calls"] if kind == "measured" and r["calls"] else
                       0.0 if name == "Default" else grid.seconds(name, ep))
            rows.append({**keys, "policy": name, "first_call": None if name == "Default" else sp[name].interval,
                         "mean_par": r["mean_par"], "mean_par_after_first_call": after,
                         "bound_par": bound_par, "bound_par_after_first_call": bound_after,
                         "transmit": r["transmit"], "calls": r["calls"], "delay_iterations": r["delay_iterations"],
                         "seconds_per_call": seconds, "transmit_scale": scale, "modelled_time": r["modelled_time"],
                         "score_vs_eplb": sim.score(r, ref),
                         "gap_closed": (ref["mean_par"] - r["mean_par"]) / gap if gap > 0 else float("nan"),
                         "oracle_par": oracle,
                         "oracle_gap_closed": ((ref_after - after) / (ref_after - oracle)
                                               if ref_after > oracle else float("nan")),
                         **_competition_columns(comp, name, time)})
        out[kind] = pl.DataFrame(rows)
    return out


def _competition_columns(comp: dict[str, dict] | None, name: str, time) -> dict:  # noqa: ANN001
    """A row's competition columns (NaN without a submission): mean PAR, slots moved, calls and the score (from
    ``time``: the competition's modelled time, transmit scaled to the full model)."""
    if comp is None:
        return {"competition_mean_par": float("nan"), "competition_transmit": None, "competition_calls": None,
                "competition_score": float("nan")}
    r = comp[name]
    return {"competition_mean_par": r["mean_par"], "competition_transmit": r["transmit"],
            "competition_calls": r["calls"], "competition_score": 100.0 * time(comp["DS-EPLB"]) / time(r)}


def summary(grid_table: pl.DataFrame) -> pl.DataFrame:
    """Per policy, drift scale and EP size (and over all EP sizes): score vs DS-EPLB, mean over seeds with
    its spread and worst cell, the cells where the policy beats DS-EPLB, mean PAR (whole trace and after the
    first call), the bound, slots moved and the gap closed; the popularity oracle's PAR and the gap to it; the
    competition's score (every policy at the evaluator's cadence, the competition's loop): its mean and worst."""
    aggs = [pl.col("competition_score").mean().alias("mean_competition_score"),
            pl.col("competition_score").min().alias("worst_competition_score"),
            pl.col("score_vs_eplb").mean().alias("mean_score"), pl.col("score_vs_eplb").std().alias("score_std"),
            pl.col("score_vs_eplb").min().alias("worst_score"),
            (pl.col("score_vs_eplb") > 100).sum().alias("cells_ahead"), pl.len().alias("cells"),
            pl.col("mean_par").mean(), pl.col("mean_par_after_first_call").mean(), pl.col("bound_par").mean(),
            pl.col("transmit").mean(), pl.col("gap_closed").mean(), pl.col("oracle_par").mean(),
            pl.col("oracle_gap_closed").mean()]
    per_ep = (grid_table.group_by("policy", "drift_scale", "ep").agg(aggs)
              .with_columns(pl.col("ep").cast(pl.Utf8)))
    over = grid_table.group_by("policy", "drift_scale").agg(aggs).with_columns(ep=pl.lit("all"))
    return (pl.concat([per_ep, over.select(per_ep.columns)])
            .with_columns(pl.col("ep").cast(pl.Int64, strict=False).fill_null(1 << 30).alias("_order"))
            .sort("policy", "drift_scale", "_order").drop("_order"))


def verdict(grid_table: pl.DataFrame) -> str:
    """Where moelab wins and where it does not, in words: the cells where it scores above DS-EPLB (and those
    where it does not), and the cells where its placements alone, from DS-EPLB's first call on, have a higher
    PAR than DS-EPLB's (its score then comes from starting earlier and moving fewer slots)."""
    def cell(r: dict) -> str:
        return f"EP{r['ep']} drift x{r['drift_scale']:g} seed {r['seed']}"

    keys = ["ep", "drift_scale", "seed"]
    ours = grid_table.filter(pl.col("policy") == "moelab").sort(keys)
    base = grid_table.filter(pl.col("policy") == "DS-EPLB").select(
        *keys, pl.col("mean_par_after_first_call").alias("eplb_after"))
    behind = ours.filter(pl.col("score_vs_eplb") <= 100)
    comp = ours["competition_score"] if "competition_score" in ours.columns else pl.Series([float("nan")])
    text = ("" if comp.is_nan().all() else
            f"the competition's score (moelab, as a submission, called at DS-EPLB's cadence in the competition's "
            f"loop): mean {comp.mean():.1f}, worst {comp.min():.1f}, above 100 in {int((comp > 100).sum())} of "
            f"{ours.height} cells; at its own cadence (a serving choice): ")
    text += (f"moelab ahead of DS-EPLB (score above 100) in {ours.height - behind.height} of {ours.height} cells"
            + ("" if behind.is_empty() else "; not ahead in " + ", ".join(
                f"{cell(r)} ({r['score_vs_eplb']:.1f})" for r in behind.iter_rows(named=True))))
    worse = (ours.join(base, on=keys).filter(pl.col("mean_par_after_first_call") > pl.col("eplb_after"))
             .sort(keys))  # a join's row order is not guaranteed: the caption's bytes must be
    if worse.is_empty():
        return text + "; its PAR from DS-EPLB's first call on is not above DS-EPLB's in any cell"
    return (text + f"; its PAR from DS-EPLB's first call on is above DS-EPLB's in {worse.height} of {ours.height} "
            f"cells (a score above 100 there comes from starting earlier and moving fewer slots): "
            + ", ".join(f"{cell(r)} ({r['mean_par_after_first_call']:.3f} vs {r['eplb_after']:.3f})"
                        for r in worse.iter_rows(named=True)))


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
    """Per imported workload, EP size and policy: the competition's score and the score vs DS-EPLB at each
    policy's own cadence, PAR (whole trace, after the first call), the bound, slots moved and the gap closed."""
    return table.select("workload", "ep", "policy", "competition_score", "score_vs_eplb", "mean_par",
                        "mean_par_after_first_call", "bound_par", "transmit", "calls",
                        "gap_closed").sort("workload", "ep", "policy")
