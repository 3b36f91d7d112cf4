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


def to_html(frame: pl.DataFrame, title: str, provenance: str) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    body = "\n".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>"
                     for row in frame.iter_rows())
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title>"
        "<style>body{font-family:sans-serif;font-size:13px}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#eee}"
        "td:first-child{text-align:left}</style></head><body>"
        f"<h3>{html.escape(title)}</h3><p>{html.escape(provenance)}</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table></body></html>\n"
    )


def write_html(frame: pl.DataFrame, path: str | Path, title: str, provenance: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(to_html(frame, title, provenance))


COACT_COLUMNS = ["coact_gini", "gain", "gain_null", "gain_column_null", "mi_bits", "mi_null_mean"]


def coactivation_summary(layers: pl.DataFrame) -> pl.DataFrame:
    """Per trace: co-activation measures averaged over layers, and the layers with gain >= 1.2."""
    return (layers.group_by("trace", "source_kind", "num_experts", "top_k", maintain_order=True)
            .agg(pl.col("tokens").first(), pl.col("groups").first(),
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


def static_placement_summary(frame: pl.DataFrame) -> pl.DataFrame:
    """Per trace, devices, policy (and CV budget): means over layers, and devices/token relative to
    the frequency-balanced placement."""
    out = (frame.group_by("trace", "source_kind", "devices", "policy", "cv_budget", maintain_order=True)
           .agg(pl.col("devices_per_token", "load_cv", "par").mean()))
    base = out.filter(pl.col("policy") == "frequency").select(
        "trace", "devices", freq_dpt=pl.col("devices_per_token"), freq_cv=pl.col("load_cv"))
    return (out.join(base, on=["trace", "devices"])
            .with_columns(vs_frequency=pl.col("devices_per_token") / pl.col("freq_dpt") - 1,
                          cv_vs_frequency=pl.col("load_cv") - pl.col("freq_cv"))
            .drop("freq_dpt", "freq_cv").sort("trace", "devices", "policy", "cv_budget", nulls_last=True))


def static_matched(frame: pl.DataFrame, tolerance: float) -> pl.DataFrame:
    """Per trace and devices, the load-capped or balanced co-activation placement with the fewest
    devices per token among those whose scored load CV is within ``tolerance`` of frequency-balanced
    (a reading of the frontier at matched CV; the same rule for every trace, control included)."""
    summary = static_placement_summary(frame)
    cand = summary.filter(pl.col("policy").is_in(["coactivation_capped", "coactivation_balanced"]))
    ok = cand.filter(pl.col("cv_vs_frequency").abs() <= tolerance + 1e-12)
    best = (ok.sort("trace", "devices", "devices_per_token", "policy", "cv_budget", nulls_last=True)
            .group_by("trace", "devices", maintain_order=True).first()
            .select("trace", "devices", matched_policy="policy", matched_cv_budget="cv_budget",
                    devices_per_token="devices_per_token", load_cv="load_cv", vs_frequency="vs_frequency"))
    counts = (cand.group_by("trace", "devices")
              .agg(candidates=pl.len(), within=(pl.col("cv_vs_frequency").abs() <= tolerance + 1e-12).sum()))
    freq = summary.filter(pl.col("policy") == "frequency").select(
        "trace", "source_kind", "devices", frequency_dpt="devices_per_token", frequency_cv="load_cv")
    return (freq.join(best, on=["trace", "devices"], how="left").join(counts, on=["trace", "devices"], how="left")
            .sort("trace", "devices"))


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
