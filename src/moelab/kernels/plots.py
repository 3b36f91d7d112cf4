"""Figures of the kernel benchmark (altair over the measurement table of ``moelab.kernels.bench``).

Every subtitle names where the numbers come from: the device (CPU, with its shape scale, or GPU), the
traces (synthetic scenario or captured model), and whether rows were recorded elsewhere."""

from __future__ import annotations

import altair as alt
import polars as pl

from moelab import provenance
from moelab.plots import _subtitle

BASELINE = "loop"


def _panel(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        panel=pl.concat_str([pl.col("trace"), pl.lit(" | "), pl.col("shape_label"), pl.lit(" | "),
                             pl.col("device_kind"), pl.lit(" "), pl.col("dtype")]))


def whole_layer(frame: pl.DataFrame, compiled_only: bool = False) -> pl.DataFrame:
    """EP = 1 rows: the whole layer on one device (its ffn split over tp = devices). Interpret-mode rows
    (Pallas off TPU) keep a label of their own, or are left out where rates would be compared."""
    data = frame.filter(pl.col("ep") == 1)
    if compiled_only:
        data = data.filter(pl.col("device_kind") != "interpret")
    return _panel(data.with_columns(implementation=pl.when(pl.col("device_kind") == "interpret")
                                    .then(pl.col("implementation") + " (interpret)")
                                    .otherwise(pl.col("implementation"))))


def latency(frame: pl.DataFrame) -> alt.FacetChart:
    data = whole_layer(frame)
    chart = alt.Chart(data).mark_line(point=True).encode(
        x=alt.X("tokens:Q", scale=alt.Scale(type="log"), title="tokens per layer call"),
        y=alt.Y("latency_p50_ms:Q", scale=alt.Scale(type="log"), title="median latency (ms)"),
        color=alt.Color("implementation:N"),
        strokeDash=alt.StrokeDash("provenance:N"),
        tooltip=["implementation:N", "tokens:Q", "latency_p50_ms:Q", "latency_p95_ms:Q", "latency_p99_ms:Q",
                 "max_imbalance:Q", "timing_method:N", "device_name:N"],
    ).properties(width=220, height=180)
    return _subtitle(chart.facet(facet=alt.Facet("panel:N", title=None), columns=3),
                     "MoE layer latency against tokens (whole layer, EP = 1)", provenance.of_measurements(frame))


def speedups(frame: pl.DataFrame) -> pl.DataFrame:
    """Each implementation's median-latency speedup over the per-expert loop, per case."""
    keys = ["device_name", "provenance", "trace", "shape_label", "dtype", "tokens", "ep", "placement"]
    base = frame.filter(pl.col("implementation") == BASELINE).select(*keys, base_ms=pl.col("latency_p50_ms"))
    return (frame.join(base, on=keys).filter(pl.col("implementation") != BASELINE)
            .with_columns(speedup=pl.col("base_ms") / pl.col("latency_p50_ms")))


def speedup_heatmap(frame: pl.DataFrame) -> alt.FacetChart:
    data = speedups(whole_layer(frame, compiled_only=True)).with_columns(
        row=pl.concat_str([pl.col("trace"), pl.lit(" | "), pl.col("shape_label")]),
        label=pl.col("speedup").round(2).cast(pl.String) + "x")
    base = alt.Chart(data).encode(x=alt.X("tokens:O", title="tokens"), y=alt.Y("row:N", title=None))
    cells = base.mark_rect().encode(
        color=alt.Color("speedup:Q", scale=alt.Scale(type="log", scheme="redblue", domainMid=1),
                        title="speedup vs loop"),
        tooltip=["row:N", "tokens:Q", "implementation:N", "speedup:Q", "latency_p50_ms:Q", "base_ms:Q"])
    text = base.mark_text(fontSize=10).encode(text="label:N")
    return _subtitle((cells + text).properties(width=160).facet(
        column=alt.Column("implementation:N"), row=alt.Row("device_name:N", title=None)),
        "Speedup over the per-expert loop (median latencies, EP = 1)", provenance.of_measurements(frame))


def roofline(frame: pl.DataFrame) -> alt.FacetChart:
    data = whole_layer(frame, compiled_only=True).with_columns(
        roofline=pl.max_horizontal("frac_peak_flops", "frac_peak_bw"),
        bound=pl.when(pl.col("frac_peak_flops") >= pl.col("frac_peak_bw")).then(pl.lit("compute"))
        .otherwise(pl.lit("memory")))
    chart = alt.Chart(data).mark_line(point=True).encode(
        x=alt.X("tokens:Q", scale=alt.Scale(type="log"), title="tokens per layer call"),
        y=alt.Y("roofline:Q", axis=alt.Axis(format="%"), title="fraction of roofline (larger of FLOP/s, bytes/s)"),
        color=alt.Color("implementation:N"),
        tooltip=["implementation:N", "tokens:Q", "tflops:Q", "tbps:Q", "frac_peak_flops:Q", "frac_peak_bw:Q",
                 "bound:N", "peak_source:N"],
    ).properties(width=220, height=180)
    return _subtitle(chart.facet(facet=alt.Facet("panel:N", title=None), columns=3),
                     "Fraction of the device's roofline (CPU: measured matmul rate and copy bandwidth)",
                     provenance.of_measurements(frame))


def placement(frame: pl.DataFrame) -> alt.FacetChart:
    """Latency of the bottleneck rank under each placement, EP > 1, at the largest token count."""
    ep = frame.filter(pl.col("ep") > 1)
    if ep.is_empty():
        ep = frame
    top = ep.group_by("trace").agg(pl.col("tokens").max().alias("top"))
    data = _panel(ep.join(top, on="trace").filter(pl.col("tokens") == pl.col("top"))).with_columns(
        case=pl.concat_str([pl.lit("EP="), pl.col("ep").cast(pl.String), pl.lit(" "), pl.col("placement")]))
    chart = alt.Chart(data).mark_bar().encode(
        x=alt.X("case:N", title=None),
        xOffset="implementation:N",
        y=alt.Y("latency_p50_ms:Q", title="bottleneck-rank median latency (ms)"),
        color=alt.Color("implementation:N"),
        tooltip=["case:N", "implementation:N", "latency_p50_ms:Q", "rank:Q", "local_pairs:Q", "rank_imbalance:Q",
                 "tokens:Q"],
    ).properties(width=200, height=180)
    return _subtitle(chart.facet(facet=alt.Facet("panel:N", title=None), columns=3),
                     "Placement to latency: the busiest rank's layer time under each placement (largest tokens)",
                     provenance.of_measurements(frame))


def alpha_match(frame: pl.DataFrame | None) -> alt.TopLevelMixin:
    """Per captured trace: synthetic busiest-rank latency against alpha, the captured latency as a dashed
    level, and the latency-matched, load-matched and maximum-likelihood alphas as rules."""
    if frame is None or frame.is_empty():
        return alt.Chart(pl.DataFrame({"note": ["no captured trace is timed (kernels.traces, kernels.alpha)"]})
                         ).mark_text(size=14).encode(text="note:N").properties(width=400, height=60)
    panels = []
    for trace in sorted(frame["trace"].unique()):
        f = frame.filter(pl.col("trace") == trace)
        r0 = f.row(0, named=True)
        marks = pl.DataFrame({"estimate": ["latency-matched", "load-matched", "maximum likelihood"],
                              "alpha": [r0["latency_matched_alpha"], r0["load_matched_alpha"], r0["mle_alpha"]]}
                             ).drop_nans()
        line = alt.Chart(f.filter(pl.col("source") != "captured")).mark_line(point=True).encode(
            x=alt.X("alpha:Q", title="power-law alpha of the synthetic workloads"),
            y=alt.Y("latency_p50_ms:Q", title="busiest-rank median latency (ms)"),
            tooltip=["alpha:Q", "latency_p50_ms:Q", "bottleneck_pairs:Q", "rank_imbalance:Q", "draws:Q"])
        level = alt.Chart(f.filter(pl.col("source") == "captured")).mark_rule(strokeDash=[4, 3], color="black"
                                                                              ).encode(y="latency_p50_ms:Q")
        rules = alt.Chart(marks).mark_rule(strokeWidth=2).encode(
            x="alpha:Q", color=alt.Color("estimate:N", title="alpha estimate"), tooltip=["estimate:N", "alpha:Q"])
        lat = r0["latency_matched_alpha"]
        found = (f"latency-matched alpha {lat:.2f}" if lat == lat else
                 "no latency-matched alpha: the captured latency is outside the synthetic range")
        panels.append(alt.layer(line, level, rules).properties(
            width=320, height=220, title=alt.TitleParams(
                f"{trace}: {r0['shape_label']}, {r0['tokens']} tokens, EP={r0['ep']}", subtitle=found)))
    devices = ", ".join(sorted(f"{k} {n}" for k, n in frame.select("device_kind", "device_name").unique().iter_rows()))
    return _subtitle(alt.hconcat(*panels), "Latency-matched alpha next to the load-matched and maximum-likelihood ones",
                     f"captured traces against synthetic power-law workloads; grouped path timed on {devices}; "
                     "dashed: the captured workload's latency")
