"""Figures of the kernel benchmark (altair over the measurement table of ``moelab.kernels.bench``).

Every subtitle names where the numbers come from: the device (CPU, with its shape scale, or GPU), the
traces (synthetic scenario or captured model), and whether rows were recorded elsewhere."""

from __future__ import annotations

import altair as alt
import polars as pl

from moelab.plots import _subtitle

BASELINE = "loop"


def source(frame: pl.DataFrame) -> str:
    devices = (frame.select("device_kind", "device_name", "provenance", "scale").unique()
               .sort("device_kind", "device_name", "provenance", "scale"))
    where = "; ".join(
        f"{r['device_kind']} {r['device_name']}"
        + (f" (hidden, ffn / {r['scale']})" if r["scale"] > 1 else "")
        + ("" if r["provenance"] == "regenerated" else f", {r['provenance']}")
        for r in devices.iter_rows(named=True))
    kinds = frame.group_by("source_kind").agg(pl.col("trace").unique().sort()).sort("source_kind")
    traces = "; ".join(f"{r['source_kind']}: {', '.join(r['trace'])}" for r in kinds.iter_rows(named=True))
    return f"{where} | traces {traces}"


def _panel(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        panel=pl.concat_str([pl.col("trace"), pl.lit(" | "), pl.col("shape_label"), pl.lit(" | "),
                             pl.col("device_kind"), pl.lit(" "), pl.col("dtype")]))


def whole_layer(frame: pl.DataFrame) -> pl.DataFrame:
    """EP = 1 rows: the whole layer on one device (its ffn split over tp = devices)."""
    return _panel(frame.filter(pl.col("ep") == 1))


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
                     "MoE layer latency against tokens (whole layer, EP = 1)", source(frame))


def speedups(frame: pl.DataFrame) -> pl.DataFrame:
    """Each implementation's median-latency speedup over the per-expert loop, per case."""
    keys = ["device_name", "provenance", "trace", "shape_label", "dtype", "tokens", "ep", "placement"]
    base = frame.filter(pl.col("implementation") == BASELINE).select(*keys, base_ms=pl.col("latency_p50_ms"))
    return (frame.join(base, on=keys).filter(pl.col("implementation") != BASELINE)
            .with_columns(speedup=pl.col("base_ms") / pl.col("latency_p50_ms")))


def speedup_heatmap(frame: pl.DataFrame) -> alt.FacetChart:
    data = speedups(whole_layer(frame)).with_columns(
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
        "Speedup over the per-expert loop (median latencies, EP = 1)", source(frame))


def roofline(frame: pl.DataFrame) -> alt.FacetChart:
    data = whole_layer(frame).with_columns(
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
                     source(frame))


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
                     source(frame))
