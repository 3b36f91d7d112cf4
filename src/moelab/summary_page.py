"""The report's summary page: each headline result next to its baseline, its dispersion, its bound where one
exists, and the command that regenerates it, read from the collected tables of this run (never typed in).

One function per stage turns that stage's collected table into rows of :data:`COLUMNS`; a stage the config
does not run has no table and no rows. Numbers are copied from the tables as they are: the summary adds no
new measurement, only the reading (which trace, which baseline, which cells) that the stage's own page
explains in full.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import polars as pl

from moelab.tables import CONTROL_FACTOR

COLUMNS = {"stage": pl.String, "result": pl.String, "workload": pl.String, "value": pl.Float64,
           "baseline": pl.String, "baseline_value": pl.Float64, "bound": pl.Float64, "dispersion": pl.String,
           "reading": pl.String, "table": pl.String}


def _row(stage: str, result: str, workload: str, value: float, baseline: str, baseline_value: float | None,
         dispersion: str, reading: str, table: str, bound: float | None = None) -> dict:
    return {"stage": stage, "result": result, "workload": workload, "value": _num(value), "baseline": baseline,
            "baseline_value": _num(baseline_value), "bound": _num(bound), "dispersion": dispersion,
            "reading": reading, "table": table}


def _num(v) -> float | None:  # noqa: ANN001
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _one(what: str) -> str:
    return "one " + what.replace("sizes", "size").removesuffix("s")


def _span(values: pl.Series, what: str, fmt: str = ".3f") -> str:
    """``lo to hi over n <what>`` (``what`` plural), or ``one <what>``."""
    v = values.drop_nulls().drop_nans() if values.dtype.is_float() else values.drop_nulls()
    if v.len() == 0:
        return "–"
    if v.len() == 1:
        return _one(what)
    return f"{format(v.min(), fmt)} to {format(v.max(), fmt)} over {v.len()} {what}"


def _sd(values: pl.Series, what: str) -> str:
    v = values.drop_nulls()
    return f"sd {v.std():.3f} over {v.len()} {what}" if v.len() > 1 else _one(what)


def _ahead(value: float, baseline: float, lower_is_better: bool) -> str:
    if value is None or baseline is None or math.isnan(value) or math.isnan(baseline):
        return "no reading"
    if value == baseline:
        return "level with the baseline"
    better = value < baseline if lower_is_better else value > baseline
    return "better than the baseline" if better else "worse than the baseline"


# --- one function per stage ------------------------------------------------------------------------------

def load_stats(t: pl.DataFrame) -> list[dict]:
    """Power-law traces: the realised top-20% share against the sampler's expectation and the published range."""
    rows = []
    pl_rows = t.filter(pl.col("alpha").is_not_nan() & pl.col("top20_expected").is_not_nan())
    for (trace,), g in pl_rows.group_by("trace", maintain_order=True):
        lo, hi = g["top20_claim_lo"][0], g["top20_claim_hi"][0]
        value, expected = g["top20_share"].mean(), g["top20_expected"][0]
        published = "" if lo is None or math.isnan(lo) else f"; published range {lo:.2f} to {hi:.2f}"
        inside = "" if not published else (" (inside the published range)" if lo <= value <= hi
                                           else " (outside the published range)")
        rows.append(_row("statistics", f"top-20% share at alpha {g['alpha'][0]:g}", trace, value,
                         "the sampler's expected share" + published, expected, _span(g["top20_share"], "layers"),
                         f"{value - expected:+.3f} from the expectation" + inside, "load_stats"))
    return rows


def coactivation(t: pl.DataFrame) -> list[dict]:
    """Per captured, proxy or imported trace: the clustering gain over chance against the null pipeline's."""
    rows = []
    for (trace, kind), g in t.filter(pl.col("source_kind") != "synthetic").group_by(
            "trace", "source_kind", maintain_order=True):
        gain, null = g["gain"].mean(), g["gain_null"].mean()
        reading = f"{gain - null:+.3f} over the null"
        parts = [(p, g[f"gain_{p}_part"].mean()) for p in ("heldout", "train") if f"gain_{p}_part" in g.columns]
        if parts and all(v is not None for _, v in parts):  # scored on the corpus part the checkpoint never saw
            reading += "; " + ", ".join(f"{p} part {v:.3f}" for p, v in parts)
        unseen = "unseen documents" if g["split"][0] == "documents" else "the second half of each document"
        rows.append(_row("co-activation", f"clustering gain over chance on {unseen} (mean over layers)",
                         f"{trace} ({kind})", gain, "the same pipeline on a null trace (1 = no structure)", null,
                         _span(g["gain"], "layers"), reading, "coactivation"))
    return rows


def static_matched(t: pl.DataFrame) -> list[dict]:
    """Per captured, proxy or imported trace and device count: devices per token of the placement chosen at
    matched balance on fitted data only, scored on the held-out part, against frequency-balanced placement;
    a trained checkpoint's row also reads its margin against its untrained control's."""
    rows = []
    for r in t.filter(pl.col("source_kind") != "synthetic").iter_rows(named=True):
        reading = f"{100 * r['vs_frequency']:+.1f}% devices per token ({r['matched_policy']})"
        tolerance = r["tolerance_vs_frequency_cv"] * r["select_frequency_cv"]
        if r["load_cv"] - r["frequency_cv"] <= tolerance + 1e-12:
            reading += f"; matched on held-out data (load CV within {tolerance:g} of frequency-balanced's)"
        else:  # chosen as matched on fitted data, but not matched where it is scored: its balance is the cost
            reading += (f"; not matched on held-out data: its load CV is {r['load_cv'] / r['frequency_cv']:.2f}x "
                        f"frequency-balanced's, the cost of that gain")
        if r.get("control") is not None and r.get("control_vs_frequency") is not None:
            reading += (f"; control {r['control']}: {100 * r['control_vs_frequency']:+.1f}%; goal (at least "
                        f"{CONTROL_FACTOR:g}x the control's margin) {'met' if r['goal_met'] else 'missed'}")
        rows.append(_row("static placement", f"devices per token of the placement chosen at matched load CV on "
                         f"fitted data, {r['devices']} devices", f"{r['trace']} ({r['source_kind']})", r["devices_per_token"],
                         "frequency-balanced placement", r["frequency_dpt"],
                         f"held-out load CV {r['load_cv']:.3f} vs {r['frequency_cv']:.3f}", reading,
                         "static_matched"))
    return rows


def cache(t: pl.DataFrame) -> list[dict]:
    """Per trace at its smallest capacity: the best online policy's miss rate against LRU, with Belady's bound."""
    rows = []
    summary = (t.group_by("trace", "source_kind", "capacity", "policy", maintain_order=True)  # same bytes each run
               .agg(pl.col("miss_rate").mean(), per_layer=pl.col("miss_rate")))
    for (trace, kind), g in summary.filter(pl.col("source_kind") != "synthetic").group_by(
            "trace", "source_kind", maintain_order=True):
        # the smallest capacity at which the policies differ (at capacity = top-k every policy and Belady tie)
        spread = g.group_by("capacity").agg((pl.col("miss_rate").max() - pl.col("miss_rate").min()).alias("d"))
        differ = spread.filter(pl.col("d") > 1e-9)["capacity"]
        cap = differ.min() if differ.len() else g["capacity"].min()
        tie = "" if differ.len() else " (every policy ties at every capacity)"
        g = g.filter(pl.col("capacity") == cap)
        online = g.filter(~pl.col("policy").is_in(["belady", "lru"])).sort("miss_rate", "policy")
        lru, belady = g.filter(pl.col("policy") == "lru"), g.filter(pl.col("policy") == "belady")
        if online.height == 0 or lru.height == 0:
            continue
        best = online.row(0, named=True)
        rows.append(_row("caching", f"miss rate of the best online policy ({best['policy']}), capacity {cap}, the "
                         f"smallest where policies differ{tie}",
                         f"{trace} ({kind})", best["miss_rate"], "LRU", lru["miss_rate"][0],
                         _span(pl.Series(best["per_layer"]), "layers"),
                         _ahead(best["miss_rate"], lru["miss_rate"][0], lower_is_better=True), "cache",
                         bound=belady["miss_rate"][0] if belady.height else None))
    return rows


def dynamic_grid(t: pl.DataFrame) -> list[dict]:
    """moelab's policy on the pinned grid against DS-EPLB (=100): per rate scale, over workloads, EP sizes and
    seeds, three ways: (a) the competition's score (moelab as a submission, called at DS-EPLB's cadence in the
    competition's loop), (b) at moelab's own cadence against DS-EPLB at its configured one (a serving choice: it
    is called far more often), (c) at its own cadence against the strongest DS-EPLB a user could configure."""
    rows = []
    ours = t.filter(pl.col("policy") == "moelab")
    eplb = t.filter(pl.col("policy") == "DS-EPLB")
    for (drift,), g in ours.group_by("drift_scale", maintain_order=True):
        where = "workload models " + ", ".join(g["workload"].unique(maintain_order=True)) + ", EP " + ", ".join(
            str(e) for e in sorted(g["ep"].unique()))
        rates = "fitted rates" if drift == 1 else f"rates x{drift:g}"
        base = eplb.filter(pl.col("drift_scale") == drift)
        smallest = g.filter(pl.col("ep") == g["ep"].min())
        if "competition_score" in g.columns and not g["competition_score"].is_nan().all():
            comp = g["competition_score"]
            rows.append(_row("dynamic placement", f"(a) the competition's score, {rates}: moelab as a submission at "
                             f"DS-EPLB's cadence, the competition's loop (mean over cells)", where, comp.mean(),
                             "DS-EPLB", 100.0, _span(comp, "cells", ".1f") + "; " + _sd(comp, "cells"),
                             _ahead(comp.mean(), 100.0, lower_is_better=False), "dynamic_grid"))
        rows.append(_row("dynamic placement", f"(b) score against DS-EPLB at moelab's own cadence (a serving "
                         f"choice), {rates} (mean over cells)", where, g["score_vs_eplb"].mean(), "DS-EPLB", 100.0,
                         _span(g["score_vs_eplb"], "cells", ".1f") + "; " + _sd(g["score_vs_eplb"], "cells"),
                         # the physical bound is a PAR, not a score: read in words, not in the bound column
                         f"mean PAR {g['mean_par'].mean():.3f}"
                         + ("" if base.is_empty() else
                            f" against DS-EPLB's {base['mean_par'].mean():.3f} (from DS-EPLB's first call on: "
                            f"{g['mean_par_after_first_call'].mean():.3f} against "
                            f"{base['mean_par_after_first_call'].mean():.3f})")
                         + " and the physical bound's "
                         f"{g['bound_par'].mean():.3f}; DS-EPLB's gap to the bound closed: "
                         f"{g['gap_closed'].mean():+.2f} (mean), {smallest['gap_closed'].mean():+.2f} at "
                         f"EP{smallest['ep'][0]}"
                         + ("" if "oracle_par" not in g.columns else
                            f"; the popularity oracle (a reference, not a bound) {g['oracle_par'].mean():.3f}, "
                            f"DS-EPLB's gap to it closed by moelab from DS-EPLB's first call on: "
                            f"{g['oracle_gap_closed'].mean():+.2f}"), "dynamic_grid"))
        if "score_vs_strongest" in g.columns:
            strong = g["score_vs_strongest"]
            rows.append(_row("dynamic placement", f"(c) score against the strongest DS-EPLB a user could configure "
                             f"in each cell, {rates} (mean over cells)", where, strong.mean(),
                             "strongest DS-EPLB", 100.0, _span(strong, "cells", ".1f") + "; " + _sd(strong, "cells"),
                             _ahead(strong.mean(), 100.0, lower_is_better=False) + "; strongest: "
                             + ", ".join(f"{n} in {c}" for n, c in
                                         g.group_by("strongest_eplb").len().sort("strongest_eplb").iter_rows()),
                             "dynamic_grid"))
    return rows


def hotness_predictions(t: pl.DataFrame) -> list[dict]:
    """The workload models against the published cells: per workload and role (fit, or predicted where the
    published value is in the file), the largest PAR error."""
    rows = []
    scored = t.filter(pl.col("par_error").is_not_null())
    for (workload, role), g in scored.group_by("workload", "role", maintain_order=True):
        worst = g.sort(pl.col("par_error").abs(), "ep", "policy", descending=[True, False, False]).row(0, named=True)
        rows.append(_row("workload models", f"{workload} mean PAR, {role} cells: largest error",
                         f"EP{worst['ep']} {worst['policy']}", worst["modelled_par"], "published",
                         worst["published_par"], _span(g["par_error"] * 100, "cells", "+.1f"),
                         f"error {100 * worst['par_error']:+.1f}% (span: errors in %)", "hotness_predictions"))
    return rows


def routing_significance(t: pl.DataFrame) -> list[dict]:
    """How many strategy differences survive Holm's correction."""
    tested = t.filter(pl.col("p_holm").is_not_null())
    n, sig = tested.height, int(tested["significant"].sum())
    return [_row("routing", "strategy pairs different after Holm's correction", "routing study", float(sig),
                 "pairs tested", float(n), f"alpha {tested['alpha'][0]:g}" if n else "–",
                 f"{sig} of {n} pairs significant", "routing_significance")] if n else []


def imported_grid(t: pl.DataFrame) -> list[dict]:
    """A user's imported load through the grid's policies: moelab against DS-EPLB per workload, the
    competition's way (at DS-EPLB's cadence, the competition's loop) and at moelab's own cadence."""
    rows = []
    for (workload,), g in t.filter(pl.col("policy") == "moelab").group_by("workload", maintain_order=True):
        if "competition_score" in g.columns and not g["competition_score"].is_nan().all():
            comp = g["competition_score"]
            rows.append(_row("imported loads", "the competition's score: moelab as a submission at DS-EPLB's "
                             "cadence, the competition's loop (mean over EP sizes)", workload, comp.mean(), "DS-EPLB",
                             100.0, _span(comp, "EP sizes", ".1f"), _ahead(comp.mean(), 100.0, lower_is_better=False),
                             "imported_grid", bound=None))
        rows.append(_row("imported loads", "moelab's score against DS-EPLB at its own cadence, a serving choice "
                         "(mean over EP sizes)", workload,
                         g["score_vs_eplb"].mean(), "DS-EPLB", 100.0, _span(g["score_vs_eplb"], "EP sizes", ".1f"),
                         _ahead(g["score_vs_eplb"].mean(), 100.0, lower_is_better=False), "imported_grid",
                         bound=None))
    return rows


def decision(t: pl.DataFrame) -> list[dict]:
    """Per load (imported, or a workload model's grid cell) and EP size: the choice over every budget and candidate
    (made on the part before the reported one), its PAR on the reported part against Default without redundant
    slots, and the SGLang flags."""
    rows = []
    loadable = t.filter(pl.col("loadable"))
    for (source, ep), g in loadable.group_by("source", "ep", maintain_order=True):
        best = g.sort("time_choose", "redundant_per_device", "candidate").row(0, named=True)
        default = g.filter((pl.col("candidate") == "Default") & (pl.col("redundant_per_device") == 0))
        pays = "rebalancing pays" if best["rebalances"] else "rebalancing does not pay"
        rows.append(_row("decision", f"serve at EP{ep} with {best['candidate']}, {best['redundant_per_device']:g} "
                         f"redundant slots per device ({best['memory_gb_per_device']:.2f} GB each): mean PAR on the "
                         f"reported part", source, best["par_report"], "Default without redundant slots",
                         default["par_report"][0] if default.height else None,
                         f"{g['candidate'].n_unique()} candidates x {g['redundant_per_device'].n_unique()} budgets",
                         f"{pays}; {best['gb_per_hour']:.1f} GB moved per hour; "
                         + ("the same rule picks it on the reported part" if best["holds"]
                            else "the same rule picks another on the reported part")
                         + f"; SGLang: {best['sglang']}", "decision"))
    return rows


STAGES: dict[str, Callable[[pl.DataFrame], list[dict]]] = {
    "decision": decision, "load_stats": load_stats, "coactivation": coactivation, "static_matched": static_matched, "cache": cache,
    "dynamic_grid": dynamic_grid, "hotness_predictions": hotness_predictions,
    "routing_significance": routing_significance, "imported_grid": imported_grid}


# the headline panels above the full table, one per stage in this order: its first row
PANELS = {"decision": "The decision", "workload models": "Calibration: workload models against published cells",
          "dynamic placement": "Placement against DS-EPLB", "caching": "Cache against Belady",
          "co-activation": "Co-activation against the null", "static placement": "Static placement"}


def panels_html(frame: pl.DataFrame) -> str:
    """Up to six panels: per stage of :data:`PANELS` that has rows, its first row as a headline (the value next
    to its baseline, the reading, where its table is)."""
    import html

    out = []
    for stage, title in PANELS.items():
        rows = frame.filter(pl.col("stage") == stage)
        if rows.is_empty():
            continue
        r = rows.row(0, named=True)

        def num(v: float | None) -> str:
            return "–" if v is None else f"{v:.3f}"

        bound = "" if r["bound"] is None else f"; bound {num(r['bound'])}"
        more = "" if rows.height == 1 else f" ({rows.height - 1} more rows in the table below)"
        out.append(f"<div class='panel'><div>{html.escape(title)}</div><b>{num(r['value'])}</b> vs "
                   f"{num(r['baseline_value'])} ({html.escape(r['baseline'])}){html.escape(bound)}"
                   f"<p>{html.escape(r['result'])}: {html.escape(r['workload'])}</p>"
                   f"<p>{html.escape(r['reading'])}</p><p>results/tables/{html.escape(r['table'])}.html"
                   f"{html.escape(more)}</p></div>")
    return "<div>" + "".join(out) + "</div>"


def build(tables: Mapping[str, pl.DataFrame], command: str) -> pl.DataFrame:
    """The summary rows of every stage whose table is given (keys of :data:`STAGES`), in stage order, each with
    the command that regenerates its table: ``command`` with ``{target}`` replaced by the table's html file."""
    unknown = set(tables) - set(STAGES)
    if unknown:
        raise ValueError(f"no summary reading for tables {sorted(unknown)}; known: {sorted(STAGES)}")
    if "{target}" not in command:
        raise ValueError(f"the regenerate command {command!r} has no {{target}} to put the table in")
    rows = [r for name, read in STAGES.items() if name in tables for r in read(tables[name])]
    for r in rows:
        r["regenerate"] = command.replace("{target}", f"results/tables/{r['table']}.html")
    return pl.DataFrame(rows, schema={**COLUMNS, "regenerate": pl.String})
