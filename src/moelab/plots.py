"""Figures (altair), each a function of tidy polars frames. ``save`` writes SVG, PNG and a
self-contained HTML (inline=True: the report must open offline). The placement, kernel and routing figures
live in ``moelab.placement.plots``, ``moelab.kernels.plots`` and ``moelab.routing.plots``."""

from __future__ import annotations

from pathlib import Path

import altair as alt
import numpy as np
import polars as pl

from moelab.jobs import atomic_path
from moelab.synthetic import powerlaw

alt.data_transformers.disable_max_rows()


def save(chart: alt.TopLevelMixin, svg: str | Path, png: str | Path, html: str | Path) -> None:
    for path, options in ((svg, {}), (png, {"scale_factor": 1.5}), (html, {"inline": True})):
        with atomic_path(path) as tmp:
            chart.save(str(tmp), **options)


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


def pick_layers(n_layers: int, most: int = 4) -> list[int]:
    """Up to ``most`` layers spread from the first to the last (small figures for deep models)."""
    if n_layers <= most:
        return list(range(n_layers))
    return sorted({round(i * (n_layers - 1) / (most - 1)) for i in range(most)})


COACT_MEASURES = {"gain_heldout_part": "corpus held-out part", "gain_train_part": "corpus train part",
                  "gain": "all scored documents", "gain_null": "null (both margins)"}


def coactivation_gain(layers: pl.DataFrame, source: str) -> alt.Chart:
    """Clustering gain per layer for each trace, scored on documents the grouping was not fitted on:
    those of the corpus part the checkpoint never trained on (solid) and of the part it did (dotted),
    or all of them for a trace with no corpus parts; and the same pipeline on its both-margins null
    (dashed): what structure a trace has beyond its loads."""
    has_parts = pl.col("gain_heldout_part").is_not_null() | pl.col("gain_train_part").is_not_null()
    long = pl.concat([
        layers.filter(has_parts if col.endswith("_part") else ~has_parts if col == "gain" else pl.lit(True))
        .select("trace", "source_kind", "decoder_layer", value=pl.col(col), measure=pl.lit(name))
        for col, name in COACT_MEASURES.items()]).drop_nulls("value")
    base = alt.Chart(long).encode(
        x=alt.X("decoder_layer:O", title="decoder layer"),
        y=alt.Y("value:Q", title="clustering gain (documents not fitted on)", scale=alt.Scale(zero=False)),
        color=alt.Color("trace:N"), detail="measure:N")
    # points in their own layer, so the legend draws each measure's dash
    chart = alt.layer(base.mark_line().encode(
        strokeDash=alt.StrokeDash("measure:N", title="scored on",
                                  scale=alt.Scale(domain=list(COACT_MEASURES.values()),
                                                  range=[[1, 0], [1, 2], [6, 2, 1, 2], [4, 3]]))),
        base.mark_point(filled=True)).properties(width=420, height=260)
    rule = alt.Chart(pl.DataFrame({"y": [1.0, 1.2]})).mark_rule(color="gray", strokeDash=[1, 3]).encode(y="y:Q")
    return _subtitle(alt.layer(chart, rule), "Co-activation clustering gain over chance, per layer", source)


def coactivation_heatmap(pairs: pl.DataFrame, source: str) -> alt.Chart:
    """Pair counts with experts ordered by their fitted group (blocks on the diagonal = teams)."""
    layers = pick_layers(int(pairs.get_column("layer").max()) + 1)
    frame = pairs.filter(pl.col("layer").is_in(layers) & (pl.col("a") != pl.col("b")))
    chart = alt.Chart(frame).mark_rect().encode(
        x=alt.X("rank_a:O", title="expert (cluster order)", axis=alt.Axis(labels=False, ticks=False)),
        y=alt.Y("rank_b:O", title="expert (cluster order)", axis=alt.Axis(labels=False, ticks=False)),
        color=alt.Color("count:Q", scale=alt.Scale(scheme="viridis", type="sqrt"), title="tokens"),
        tooltip=["a:Q", "b:Q", "count:Q", "group_a:Q"],
    ).properties(width=200, height=200)
    return _subtitle(chart.facet(facet=alt.Facet("layer:O", title="MoE layer"), columns=4),
                     "Co-activation matrix, experts ordered by their fitted group", source)


def domain_expert(dom: pl.DataFrame, source: str) -> alt.Chart:
    """Share of each domain's activations per expert (rows sum to 1)."""
    layers = pick_layers(int(dom.get_column("layer").max()) + 1)
    chart = alt.Chart(dom.filter(pl.col("layer").is_in(layers))).mark_rect().encode(
        x=alt.X("expert:O", axis=alt.Axis(labelOverlap=True)),
        y=alt.Y("domain:N"),
        color=alt.Color("share:Q", scale=alt.Scale(scheme="magma", reverse=True), title="share"),
    ).properties(width=320, height=140)
    return _subtitle(chart.facet(facet=alt.Facet("layer:O", title="MoE layer"), columns=2),
                     "Expert use by domain", source)


def layer_loads(experts: pl.DataFrame, source: str) -> alt.Chart:
    """Rank-ordered expert load share, one line per layer (one trace)."""
    chart = alt.Chart(experts.filter(pl.col("share") > 0)).mark_line(point=alt.OverlayMarkDef(size=10)).encode(
        x=alt.X("rank:Q", title="expert rank"),
        y=alt.Y("share:Q", scale=alt.Scale(type="log"), title="load share"),
        color=alt.Color("layer:O", scale=alt.Scale(scheme="viridis"), title="MoE layer"),
    ).properties(width=420, height=240)
    return _subtitle(chart, "Expert load per layer", source)


def alpha_comparison(layers: pl.DataFrame, source: str) -> alt.Chart:
    """Effective power-law alpha (MLE per layer) of every trace whose loads identify one."""
    frame = layers.filter(pl.col("alpha_mle").is_not_nan()).select(
        "trace", "source_kind", "layer", "alpha_mle", "num_experts")
    points = alt.Chart(frame).mark_point(filled=True, size=40, opacity=0.7).encode(
        x=alt.X("alpha_mle:Q", title="effective alpha (MLE of per-layer loads)"),
        y=alt.Y("trace:N", title=None, sort=alt.EncodingSortField("alpha_mle", op="mean")),
        color=alt.Color("source_kind:N", title="source"),
        tooltip=["trace:N", "layer:Q", "alpha_mle:Q"],
    ).properties(width=420)
    return _subtitle(points, "Effective alpha: captured traces next to synthetic scenarios", source)


def training_curve(curve: pl.DataFrame, source: str) -> alt.Chart:
    """Training loss (per step) and held-out loss of the embedded checkpoint."""
    long = pl.concat([
        curve.drop_nulls("loss").select("step", value=pl.col("loss"), series=pl.lit("train (LM part)")),
        curve.drop_nulls("eval_loss").select("step", value=pl.col("eval_loss"), series=pl.lit("held out")),
    ])
    chart = alt.Chart(long).mark_line(point=False).encode(
        x=alt.X("step:Q"), y=alt.Y("value:Q", title="loss (nats/token)", scale=alt.Scale(zero=False)),
        color=alt.Color("series:N", title=""),
    ).properties(width=420, height=220)
    return _subtitle(chart, "Embedded checkpoint training", source)


def cache_miss(frame: pl.DataFrame, source: str) -> alt.Chart:
    """Demand miss rate against cache capacity per policy (mean over layers); Belady is the bound. The
    co-activation prefetcher's loads per activation (its bandwidth) is the extra dotted line."""
    mean = (frame.group_by("trace", "capacity", "policy").agg(pl.col("miss_rate", "loads_per_activation").mean())
            .sort("trace", "capacity", "policy"))
    loads = (mean.filter(pl.col("policy") == "coact")
             .with_columns(policy=pl.lit("coact (+ prefetch loads)"), miss_rate=pl.col("loads_per_activation")))
    mean = pl.concat([mean, loads])
    chart = alt.Chart(mean).mark_line(point=True).encode(
        x=alt.X("capacity:Q", title="cache capacity (experts)"),
        y=alt.Y("miss_rate:Q", title="demand misses (or all loads) per activation"),
        color=alt.Color("policy:N"),
        strokeDash=alt.condition((alt.datum.policy == "belady") | (alt.datum.policy == "coact (+ prefetch loads)"),
                                 alt.value([4, 3]), alt.value([1, 0])),
    ).properties(width=220, height=200)
    return _subtitle(chart.facet(facet=alt.Facet("trace:N"), columns=3),
                     "Expert cache miss rate by capacity", source)


def prefetch_hits(frame: pl.DataFrame, source: str) -> alt.Chart:
    """Next-token prefetch hit rate against budget B per predictor (mean over layers)."""
    mean = (frame.group_by("trace", "budget", "predictor").agg(pl.col("hit_rate").mean())
            .sort("trace", "budget", "predictor"))
    chart = alt.Chart(mean).mark_line(point=True).encode(
        x=alt.X("budget:Q", title="prefetch budget B (experts)"),
        y=alt.Y("hit_rate:Q", title="share of the next token's experts prefetched"),
        color=alt.Color("predictor:N"),
    ).properties(width=220, height=200)
    return _subtitle(chart.facet(facet=alt.Facet("trace:N"), columns=3),
                     "Next-token prefetch: LFU vs recency vs co-activation", source)
