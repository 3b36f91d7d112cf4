"""Figures (altair), each a function of tidy polars frames. ``save`` writes SVG, PNG and a
self-contained HTML (inline=True: the report must open offline)."""

from __future__ import annotations

from pathlib import Path

import altair as alt
import numpy as np
import polars as pl

from moelab.synthetic import powerlaw

alt.data_transformers.disable_max_rows()


def save(chart: alt.TopLevelMixin, svg: str | Path, png: str | Path, html: str | Path) -> None:
    chart.save(str(svg))
    chart.save(str(png), scale_factor=1.5)
    chart.save(str(html), inline=True)


def _subtitle(chart: alt.Chart, title: str, source: str) -> alt.Chart:
    return chart.properties(title=alt.TitleParams(title, subtitle=source, anchor="start"))


def powerlaw_frames(rng: np.random.Generator, alphas: list[float], n: int, reference_tokens: int,
                    num_experts: int) -> dict[str, pl.DataFrame]:
    """Samples, theoretical PDF/CDF curves and rank-ordered expert loads for each alpha."""
    xmax = powerlaw.xmax_for(reference_tokens)
    grid = np.geomspace(1.0, xmax, 200)
    samples, curves, ranks = [], [], []
    for a in alphas:
        x = powerlaw.sample(rng, a, n, 1.0, xmax)
        samples.append(pl.DataFrame({"alpha": np.full(n, a), "x": x}))
        ecdf = np.searchsorted(np.sort(x), grid, side="right") / n
        curves.append(pl.DataFrame({"alpha": np.full(grid.size, a), "x": grid,
                                    "pdf": powerlaw.pdf(grid, a, 1.0, xmax),
                                    "cdf": powerlaw.cdf(grid, a, 1.0, xmax), "ecdf": ecdf}))
        loads = np.sort(powerlaw.sample(rng, a, num_experts, 1.0, xmax))[::-1]
        ranks.append(pl.DataFrame({"alpha": np.full(num_experts, a), "rank": np.arange(1, num_experts + 1),
                                   "share": loads / loads.sum()}))
    return {"samples": pl.concat(samples), "curves": pl.concat(curves), "ranks": pl.concat(ranks)}


def powerlaw_comparison(samples: pl.DataFrame, curves: pl.DataFrame, ranks: pl.DataFrame,
                        source: str) -> alt.VConcatChart:
    """The reference's six panels: per-alpha histograms with the PDF, log overlay, CDFs, ranks."""
    color = alt.Color("alpha:N", title="alpha")
    xmax = float(curves["x"].max())
    hist_rows = []
    for a in samples["alpha"].unique(maintain_order=True).to_list():
        x = samples.filter(pl.col("alpha") == a)["x"].to_numpy()
        # log-spaced bins for heavy tails, else the whole histogram is one bar at x = 1
        bins = np.linspace(1.0, xmax, 41) if a == 0 else np.geomspace(1.0, xmax, 41)
        dens, edges = np.histogram(x, bins=bins, density=True)
        hist_rows.append(pl.DataFrame({"alpha": np.full(dens.size, a), "lo": edges[:-1], "hi": edges[1:],
                                       "density": dens}))
    hist = pl.concat(hist_rows)
    panels = []
    for a in hist["alpha"].unique(maintain_order=True).to_list():
        scale = alt.Scale(type="linear") if a == 0 else alt.Scale(type="log")
        h = alt.Chart(hist.filter(pl.col("alpha") == a)).mark_rect(opacity=0.6).encode(
            x=alt.X("lo:Q", title="x", scale=scale), x2="hi", y=alt.Y("density:Q", title="density", scale=scale))
        c = alt.Chart(curves.filter(pl.col("alpha") == a)).mark_line(color="black").encode(x="x:Q", y="pdf:Q")
        panels.append((h + c).properties(title=f"alpha = {a:g}: samples vs PDF", width=220, height=160))
    overlay = alt.Chart(curves).mark_line().encode(
        x=alt.X("x:Q", scale=alt.Scale(type="log")), y=alt.Y("pdf:Q", scale=alt.Scale(type="log")),
        color=color).properties(title="PDFs, log-log", width=220, height=160)
    cdfs = (alt.Chart(curves).mark_line().encode(x=alt.X("x:Q", scale=alt.Scale(type="log")), y="cdf:Q",
                                                 color=color)
            + alt.Chart(curves).mark_line(strokeDash=[3, 3]).encode(
                x="x:Q", y=alt.Y("ecdf:Q", title="CDF (dashed: empirical)"), color=color)
            ).properties(title="CDF: theory vs samples", width=220, height=160)
    rank = alt.Chart(ranks).mark_line(point=True).encode(
        x=alt.X("rank:Q", scale=alt.Scale(type="log"), title="expert rank"),
        y=alt.Y("share:Q", scale=alt.Scale(type="log"), title="load share"), color=color,
    ).properties(title="Rank-ordered expert loads", width=220, height=160)
    chart = alt.vconcat(alt.hconcat(*panels), alt.hconcat(overlay, cdfs, rank))
    return chart.properties(title=alt.TitleParams("Truncated power-law sampler", subtitle=source, anchor="start"))


def expert_loads(experts: pl.DataFrame, source: str) -> alt.Chart:
    """Rank-ordered expert load share per scenario (all layers, log-log), one panel per scenario.
    Experts with no load cannot sit on a log axis and are left out (load_stats counts them)."""
    base = alt.Chart(experts.filter(pl.col("share") > 0)).mark_line(point=alt.OverlayMarkDef(size=8)).encode(
        x=alt.X("rank:Q", scale=alt.Scale(type="log"), title="expert rank"),
        y=alt.Y("share:Q", scale=alt.Scale(type="log", domainMin=1e-5), title="load share"),
        color=alt.Color("layer:N"), detail="layer:N",
    ).properties(width=180, height=130)
    return _subtitle(base.facet(facet=alt.Facet("domain:N", title="scenario"), columns=4),
                     "Expert load share by rank, per layer", source)


def device_loads(devices: pl.DataFrame, source: str) -> alt.Chart:
    """Per-device load relative to the mean (contiguous E/ep experts per device), per EP size."""
    layer0 = devices.filter(pl.col("layer") == 0)
    base = alt.Chart(layer0).mark_bar().encode(
        x=alt.X("device:O"), y=alt.Y("rel_load:Q", title="device load / mean"),
        color=alt.Color("ep_size:N", title="EP size"),
        xOffset="ep_size:N",
    ).properties(width=200, height=120)
    rule = alt.Chart().mark_rule(strokeDash=[2, 2]).encode(y=alt.datum(1.0))
    return _subtitle(alt.layer(base, rule, data=layer0).facet(facet=alt.Facet("domain:N", title="scenario"),
                                                              columns=4),
                     "Per-device load (layer 0), contiguous expert groups", source)


def drift_timeline(timeline: pl.DataFrame, source: str) -> alt.Chart:
    """Expert load share per window of iterations (layer 0): how popularity moves."""
    chart = alt.Chart(timeline).mark_rect().encode(
        x=alt.X("window_start:O", title="iteration (window start)", axis=alt.Axis(labelOverlap=True)),
        y=alt.Y("expert:O", title="expert", axis=alt.Axis(labels=False, ticks=False)),
        color=alt.Color("share:Q", scale=alt.Scale(scheme="viridis", type="sqrt"), title="load share"),
    ).properties(width=520, height=260)
    return _subtitle(chart, "Expert load over iterations under drift (layer 0)", source)


def top20_share(realised: pl.DataFrame, sweep: pl.DataFrame, source: str) -> alt.HConcatChart:
    """Left: realised top-20% share per power-law trace vs the sampler's expectation and the
    reference's claimed range. Right: expectation vs reference_tokens (it is not a constant)."""
    pts = alt.Chart(realised).mark_point(filled=True, size=60).encode(
        x=alt.X("alpha:Q"), y=alt.Y("top20_share:Q", title="top-20% share", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("num_experts:N", title="experts"), tooltip=["trace", "top20_share", "top20_expected"])
    exp = alt.Chart(realised).mark_tick(color="black", thickness=2, size=18).encode(x="alpha:Q", y="top20_expected:Q")
    claim = alt.Chart(realised.filter(pl.col("top20_claim_lo").is_not_nan())).mark_rule(
        color="red", strokeWidth=6, opacity=0.35).encode(x="alpha:Q", y="top20_claim_lo:Q", y2="top20_claim_hi:Q")
    left = (claim + pts + exp).properties(
        title="Realised (dots) vs sampler expectation (ticks) vs reference claim (red)", width=300, height=220)
    right = alt.Chart(sweep).mark_line(point=True).encode(
        x=alt.X("reference_tokens:Q", scale=alt.Scale(type="log")),
        y=alt.Y("top20_expected:Q", title="expected top-20% share", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("alpha:N", title="alpha"), strokeDash=alt.StrokeDash("num_experts:N", title="experts"),
    ).properties(title="Sampler expectation vs reference_tokens", width=300, height=220)
    return alt.hconcat(left, right).resolve_scale(color="independent", strokeDash="independent").properties(
        title=alt.TitleParams("Top-20% expert share: realised vs expected", subtitle=source, anchor="start"))
