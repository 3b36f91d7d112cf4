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


ESTIMATES = (("latency_matched", "latency-matched"), ("load_matched", "load-matched"),
             ("mle", "maximum likelihood"))


def _estimate(row: dict, name: str) -> str:
    a, lo, hi = (row[f"{name}_alpha{end}"] for end in ("", "_low", "_high"))
    band = f"[{lo:.2f}, {hi:.2f}]" if lo == lo else "outside every band"
    return f"{a:.2f} {band}" if a == a else f"no crossing, {band}"


def alpha_match(frame: pl.DataFrame | None) -> alt.TopLevelMixin:
    """Per captured trace: the sampled workloads' busiest-rank latency and pair count against alpha (median
    over draws, the band their min to max), the captured values as dashed levels, and the three estimates with
    their intervals on the same alpha axis."""
    if frame is None or frame.is_empty():
        return alt.Chart(pl.DataFrame({"note": ["no captured trace is timed (kernels.traces, kernels.alpha)"]})
                         ).mark_text(size=14).encode(text="note:N").properties(width=400, height=60)
    columns = []
    for trace in sorted(frame["trace"].unique()):
        f = frame.filter(pl.col("trace") == trace).fill_nan(None)
        r0 = frame.filter(pl.col("trace") == trace).row(0, named=True)
        syn, cap = f.filter(pl.col("source") == "sampled"), f.filter(pl.col("source") == "captured")
        est = pl.DataFrame({"estimate": [label for _, label in ESTIMATES],
                            "alpha": [r0[f"{n}_alpha"] for n, _ in ESTIMATES],
                            "low": [r0[f"{n}_alpha_low"] for n, _ in ESTIMATES],
                            "high": [r0[f"{n}_alpha_high"] for n, _ in ESTIMATES]}).fill_nan(None)
        edges = [v for v in [*syn["alpha"].to_list(), *est["low"].to_list(), *est["high"].to_list()] if v is not None]
        scale = alt.Scale(domain=[min(edges), max(edges)], nice=False)
        x = alt.X("alpha:Q", title="power-law alpha", scale=scale)
        order = [label for _, label in ESTIMATES]
        color = alt.Color("estimate:N", title="alpha estimate", sort=order)
        rows = []
        for measure, title in (("latency_p50_ms", "busiest-rank median latency (ms)"),
                               ("bottleneck_pairs", "busiest-rank token-expert pairs")):
            band = alt.Chart(syn).mark_area(opacity=0.25, color="gray").encode(
                x=x, y=alt.Y(f"{measure}_low:Q", title=title, scale=alt.Scale(zero=False)), y2=f"{measure}_high:Q")
            line = alt.Chart(syn).mark_line(point=alt.OverlayMarkDef(color="gray"), color="gray").encode(
                x=x, y=f"{measure}:Q", tooltip=["alpha:Q", f"{measure}:Q", f"{measure}_low:Q", f"{measure}_high:Q",
                                                "rank_imbalance:Q", "expert_imbalance:Q", "draws:Q"])
            level = alt.Chart(cap).mark_rule(strokeDash=[4, 3], color="black").encode(y=f"{measure}:Q")
            rules = alt.Chart(est).transform_filter("datum.alpha != null").mark_rule(strokeWidth=2).encode(
                x="alpha:Q", color=color, tooltip=["estimate:N", "alpha:Q"])
            rows.append(alt.layer(band, line, level, rules).properties(width=360, height=180))
        bars = alt.Chart(est).transform_filter("datum.low != null").mark_rule(strokeWidth=3).encode(
            x=alt.X("low:Q", title="power-law alpha", scale=scale), x2="high:Q",
            y=alt.Y("estimate:N", title=None, sort=order), color=color, tooltip=["estimate:N", "alpha:Q", "low:Q",
                                                                                 "high:Q"])
        points = alt.Chart(est).transform_filter("datum.alpha != null").mark_point(filled=True, size=60).encode(
            x=x, y=alt.Y("estimate:N", title=None, sort=order), color=color)
        rows.append(alt.layer(bars, points).properties(width=360, height=70))
        found = "; ".join(f"{label} {_estimate(r0, n)}" for n, label in ESTIMATES)
        columns.append(alt.vconcat(*rows).properties(title=alt.TitleParams(
            f"{trace}: {r0['shape_label']}, {r0['tokens']} tokens, EP={r0['ep']}", subtitle=found)))
    devices = ", ".join(sorted(f"{k} {n}" for k, n in
                               frame.filter(pl.col("source") == "sampled").select("device_kind", "device_name")
                               .unique().iter_rows()))
    level = int(round(100 * frame["mle_level"][0]))
    return _subtitle(alt.hconcat(*columns),
                     "Latency-matched alpha next to the load-matched and maximum-likelihood ones",
                     f"captured traces against sampled power-law workloads (no round-robin point), grouped path "
                     f"timed on {devices}; grey: median and min to max over draws; dashed: the captured workload; "
                     f"intervals: the alphas whose band holds the captured value, and the {level}% likelihood-ratio "
                     "interval")
