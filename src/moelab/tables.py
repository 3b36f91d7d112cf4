"""Summary tables for the report: small polars frames rendered as self-contained HTML."""

from __future__ import annotations

import html
import math
from pathlib import Path

import polars as pl

from moelab.jobs import atomic_path

SUMMARY_COLUMNS = ["load_cv", "max_mean", "gini", "top20_share", "top20_expected", "entropy_norm",
                   "alpha_mle", "zero_experts", "saturated_experts"]


def load_summary(layers: pl.DataFrame) -> pl.DataFrame:
    """Per trace: the mean over layers of the main load statistics (device columns too)."""
    dev = [c for c in layers.columns if c.startswith("dev") and c.endswith("_max_mean_iter")]
    cols = [c for c in SUMMARY_COLUMNS + dev if c in layers.columns]
    return (layers.group_by("trace", "source_kind", "num_experts", "top_k", maintain_order=True)
            .agg(pl.col(c).mean() for c in cols)
            .sort("num_experts", "trace"))


def _fmt(v) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        return f"{v:.2e}" if 0 < abs(v) < 0.001 else f"{v:.3f}"  # a small p-value is not 0.000
    return html.escape(str(v))


def to_html(frame: pl.DataFrame, title: str, provenance: str, before: str = "") -> str:
    """A table as a self-contained page; ``before``: HTML put between the provenance and the table."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    body = "\n".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>"
                     for row in frame.iter_rows())
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title>"
        "<style>body{font-family:sans-serif;font-size:13px}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#eee}"
        "td:first-child{text-align:left}.panel{display:inline-block;vertical-align:top;width:300px;margin:4px;"
        "padding:6px 8px;border:1px solid #ccc;background:#fafafa}.panel b{font-size:20px}</style></head><body>"
        f"<h3>{html.escape(title)}</h3><p>{html.escape(provenance)}</p>{before}"
        f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table></body></html>\n"
    )


def write_html(frame: pl.DataFrame, path: str | Path, title: str, provenance: str, before: str = "") -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(to_html(frame, title, provenance, before))


COACT_COLUMNS = ["coact_gini", "gain", "gain_null", "gain_column_null", "gain_heldout_part", "gain_train_part",
                 "mi_bits", "mi_null_mean"]


def coactivation_summary(layers: pl.DataFrame) -> pl.DataFrame:
    """Per trace: co-activation measures averaged over layers, and the layers with gain >= 1.2. The
    split (``documents`` or ``document halves``) and its sizes are the same for every layer."""
    return (layers.group_by("trace", "source_kind", "num_experts", "top_k", "split", maintain_order=True)
            .agg(pl.col("tokens", "groups", "fit_documents", "score_documents", "score_tokens",
                        "score_tokens_heldout_part", "score_tokens_train_part").first(),
                 *(pl.col(c).mean() for c in COACT_COLUMNS),
                 layers_gain_ge_1_2=(pl.col("gain") >= 1.2).sum(), layers=pl.len())
            .sort("source_kind", "trace"))


def tiny_checkpoint(curve: pl.DataFrame, coact: pl.DataFrame, stats: pl.DataFrame) -> pl.DataFrame:
    """The embedded checkpoint against its untrained control: loss, load CV, expert/domain
    information and co-activation gain (means over layers), with the trained/untrained ratio."""
    evals = curve.drop_nulls("eval_loss").sort("step")

    def of(frame: pl.DataFrame, trace: str, col: str) -> float:
        return float(frame.filter(pl.col("trace") == trace).get_column(col).mean())

    rows = [("held-out loss (nats/token)", float(evals.get_column("eval_loss")[-1]),
             float(evals.get_column("eval_loss")[0]))]
    t, u = "captured-tiny", "captured-tiny-untrained"
    rows.append(("load CV (mean over layers)", of(stats, t, "load_cv"), of(stats, u, "load_cv")))
    for col, name in (("mi_bits", "expert/domain MI (bits)"), ("mi_null_mean", "MI, shuffled-label null"),
                      ("gain", "co-activation gain"), ("gain_null", "co-activation gain, null")):
        rows.append((name, of(coact, t, col), of(coact, u, col)))
    return pl.DataFrame(
        {"measure": [r[0] for r in rows], "trained": [r[1] for r in rows], "untrained": [r[2] for r in rows],
         "ratio": [r[1] / r[2] if r[2] else float("nan") for r in rows]})


MATCH_CANDIDATES = ("coactivation_capped", "coactivation_balanced")
CONTROL_FACTOR = 2  # the goal: a trained checkpoint beats frequency-balanced by this many times its control's margin


def static_placement_summary(frame: pl.DataFrame) -> pl.DataFrame:
    """Per trace, devices, policy (and CV budget): means over layers, and devices/token and load CV relative
    to the frequency-balanced placement, on the scored part and (``select_*``) on the nested selection split
    inside the fitted part."""
    cols = ["devices_per_token", "load_cv", "par", "select_devices_per_token", "select_load_cv"]
    out = (frame.group_by("trace", "source_kind", "devices", "policy", "cv_budget", maintain_order=True)
           .agg(pl.col(cols).mean()))
    base = out.filter(pl.col("policy") == "frequency").select(
        "trace", "devices", freq_dpt=pl.col("devices_per_token"), freq_cv=pl.col("load_cv"),
        freq_select_dpt=pl.col("select_devices_per_token"), freq_select_cv=pl.col("select_load_cv"))
    return (out.join(base, on=["trace", "devices"])
            .with_columns(vs_frequency=pl.col("devices_per_token") / pl.col("freq_dpt") - 1,
                          cv_vs_frequency=pl.col("load_cv") - pl.col("freq_cv"),
                          select_vs_frequency=pl.col("select_devices_per_token") / pl.col("freq_select_dpt") - 1,
                          select_cv_vs_frequency=pl.col("select_load_cv") - pl.col("freq_select_cv"))
            .drop("freq_dpt", "freq_cv", "freq_select_dpt", "freq_select_cv")
            .sort("trace", "devices", "policy", "cv_budget", nulls_last=True))


def static_controls(traces: list[str]) -> pl.DataFrame:
    """Each trained trace with its untrained control and its proxy, by name: ``captured-<name>`` pairs with
    ``captured-<name>-untrained`` (when that trace is present) and ``proxy-<name>`` (null when absent)."""
    present = set(traces)
    rows = [{"trace": t, "control": f"{t}-untrained",
             "proxy": p if (p := "proxy-" + t.removeprefix("captured-")) in present else None}
            for t in sorted(present) if t.startswith("captured-") and f"{t}-untrained" in present]
    return pl.DataFrame(rows, schema={"trace": pl.String, "control": pl.String, "proxy": pl.String})


def static_matched(frame: pl.DataFrame, tolerance: float, factor: float = CONTROL_FACTOR) -> pl.DataFrame:
    """Per trace and devices, the placement a deployment would pick from fitted data alone, scored once on the
    held-out part. The choice reads only the ``select_*`` columns (the nested split inside the fitted part):
    among frequency-balanced and the capped or balanced co-activation placements whose selection load CV
    exceeds frequency-balanced's by at most ``tolerance``, the fewest selection devices per token (frequency
    on a tie; frequency when no co-activation placement qualifies). The same rule for every trace.

    Then, held out: the choice's ``vs_frequency`` and ``cv_vs_frequency`` (the balance it actually kept).
    ``tolerance_vs_frequency_cv``: the tolerance as a share of frequency-balanced's selection CV. A trained
    trace with an untrained control (:func:`static_controls`) gets the control's and the proxy's
    ``vs_frequency`` at the same D and ``goal_met``: it beats frequency-balanced (``vs_frequency < 0``) by at
    least ``factor`` times the control's margin."""
    summary = static_placement_summary(frame)
    pool = summary.filter(pl.col("policy").is_in(["frequency", *MATCH_CANDIDATES]))
    qualifies = pl.col("select_cv_vs_frequency") <= tolerance + 1e-12
    best = (pool.filter(qualifies)
            .sort("trace", "devices", "select_devices_per_token", pl.col("policy") != "frequency", "policy",
                  "cv_budget", nulls_last=True)
            .group_by("trace", "devices", maintain_order=True).first()
            .select("trace", "devices", "vs_frequency", "cv_vs_frequency", "devices_per_token", "load_cv",
                    matched_policy="policy", matched_cv_budget="cv_budget"))
    counts = (pool.filter(pl.col("policy").is_in(MATCH_CANDIDATES)).group_by("trace", "devices")
              .agg(candidates=pl.len(), within=qualifies.sum()))
    freq = summary.filter(pl.col("policy") == "frequency").select(
        "trace", "source_kind", "devices", frequency_dpt="devices_per_token", frequency_cv="load_cv",
        select_frequency_cv="select_load_cv",
        tolerance_vs_frequency_cv=tolerance / pl.col("select_load_cv"))
    matched = (freq.join(best, on=["trace", "devices"], how="left")
               .join(counts, on=["trace", "devices"], how="left"))
    margin = matched.select("devices", other="trace", other_vs="vs_frequency")
    matched = (matched.join(static_controls(matched.get_column("trace").unique().to_list()), on="trace", how="left")
               .join(margin.rename({"other": "control", "other_vs": "control_vs_frequency"}),
                     on=["control", "devices"], how="left")
               .join(margin.rename({"other": "proxy", "other_vs": "proxy_vs_frequency"}),
                     on=["proxy", "devices"], how="left")
               .with_columns(goal_met=pl.when(pl.col("control_vs_frequency").is_not_null()).then(
                   (pl.col("vs_frequency") < 0)
                   & (pl.col("vs_frequency") <= factor * pl.col("control_vs_frequency") + 1e-12))))
    return matched.select(
        "trace", "source_kind", "devices", "matched_policy", "matched_cv_budget", "vs_frequency", "cv_vs_frequency",
        "devices_per_token", "load_cv", "frequency_dpt", "frequency_cv", "select_frequency_cv",
        "tolerance_vs_frequency_cv", "candidates", "within", "control", "control_vs_frequency", "proxy",
        "proxy_vs_frequency", "goal_met").sort("trace", "devices")


SELECT_NOTE = ("the same placements fitted on the first part of the fitted iterations and scored on the rest of "
               "them (the split nested inside the fitted part): what the matched table chooses by")


def static_matched_note(matched: pl.DataFrame, split_fraction: float, tolerance: float) -> str:
    """The matched table's caption: the selection rule with its numbers, then :func:`static_goal_verdict`."""
    return (f"the choice sees the fitted iterations only: fit on their first {split_fraction:.0%}, select on the "
            "rest. Per trace and D, among frequency-balanced and the capped or balanced co-activation placements "
            f"whose selection load CV is at most frequency-balanced's + {tolerance:g} (tolerance_vs_frequency_cv: "
            "that tolerance as a share of frequency-balanced's selection CV), the fewest selection devices per "
            "token; then scored once on the held-out part (vs_frequency; cv_vs_frequency: the balance it kept). "
            "The same rule for every trace; within = co-activation candidates that qualified. "
            + static_goal_verdict(matched))


def static_goal_verdict(matched: pl.DataFrame, factor: float = CONTROL_FACTOR) -> str:
    """One line per trained trace of :func:`static_matched`: at which device counts it beats frequency-balanced
    by at least ``factor`` times its untrained control's margin, and at which it does not."""
    paired = matched.filter(pl.col("goal_met").is_not_null())
    if paired.is_empty():
        return ("no trained trace has an untrained control here (captured-<name> with captured-<name>-untrained): "
                "no trained-against-control reading")

    def at(rows: pl.DataFrame) -> str:
        return ", ".join(map(str, rows.get_column("devices").to_list())) or "none"

    lines = []
    for (trace, control), rows in paired.group_by("trace", "control", maintain_order=True):
        lines.append(f"{trace} against {control} (goal: beat frequency-balanced by at least {factor:g}x the "
                     f"control's margin): met at D = {at(rows.filter(pl.col('goal_met')))}, "
                     f"missed at D = {at(rows.filter(~pl.col('goal_met')))}")
    return "; ".join(lines)


def cache_summary(frame: pl.DataFrame) -> pl.DataFrame:
    """Per trace, capacity and policy: demand miss rate and loads per activation (prefetches included),
    averaged over layers."""
    return (frame.group_by("trace", "source_kind", "capacity", "capacity_share", "policy", maintain_order=True)
            .agg(pl.col("miss_rate", "loads_per_activation").mean()).sort("trace", "capacity", "policy"))


def seeds_summary(frame: pl.DataFrame) -> pl.DataFrame:
    """Per policy over seeds: mean and worst score against DS-EPLB, mean PAR and slots moved."""
    return (frame.group_by("policy", maintain_order=True)
            .agg(pl.col("score_vs_eplb").mean().alias("score_vs_eplb_mean"),
                 pl.col("score_vs_eplb").min().alias("score_vs_eplb_worst"),
                 pl.col("mean_par").mean(), pl.col("transmit").mean(), pl.col("calls").mean(),
                 pl.len().alias("seeds")))


def prefetch_summary(frame: pl.DataFrame) -> pl.DataFrame:
    """Per trace and budget: next-token hit rate of each predictor (mean over layers), side by side, with
    co-activation's margin over LFU and over recency, and in how many layers co-activation beats each."""
    wide = (frame.group_by("trace", "source_kind", "budget", "layer").agg(
        [pl.col("hit_rate").filter(pl.col("predictor") == p).first().alias(p) for p in ("lfu", "recent", "coact")]))
    return (wide.group_by("trace", "source_kind", "budget", maintain_order=True)
            .agg(pl.col("lfu", "recent", "coact").mean(),
                 (pl.col("coact") > pl.col("lfu")).sum().alias("coact_beats_lfu_layers"),
                 (pl.col("coact") > pl.col("recent")).sum().alias("coact_beats_recent_layers"),
                 pl.len().alias("layers"))
            .with_columns(coact_minus_lfu=pl.col("coact") - pl.col("lfu"),
                          coact_minus_recent=pl.col("coact") - pl.col("recent"))
            .sort("trace", "budget"))
