"""Figures of the serving-scale placement evaluation: the hotness calibration and the pinned grid."""

from __future__ import annotations

import textwrap

import altair as alt
import polars as pl


def _titled(chart: alt.TopLevelMixin, title: str, source: str) -> alt.TopLevelMixin:
    """The title, and the data's provenance as a subtitle wrapped to the figure's width."""
    return chart.properties(title=alt.TitleParams(title, subtitle=textwrap.wrap(source, 110), anchor="start"))


def calibration(cells: pl.DataFrame, source: str) -> alt.TopLevelMixin:
    """Published and modelled side by side for every cell, PAR and transmit apart; the role (fit,
    predicted, extrapolation) in each label."""
    long = (cells.with_columns(label=pl.format("{} ({}, {})", "cell", "model", "role"))
            .unpivot(index=["label", "metric", "role"], on=["published", "modelled"], variable_name="source",
                     value_name="value")
            .drop_nulls("value"))
    charts = []
    for metric, title in (("mean_par", "mean PAR over the trace"), ("transmit", "slots moved")):
        part = long.filter(pl.col("metric") == metric)
        charts.append(alt.Chart(part).mark_point(filled=True, size=70).encode(
            y=alt.Y("label:N", title=None, sort=None, axis=alt.Axis(labelLimit=420)),
            x=alt.X("value:Q", title=title, scale=alt.Scale(zero=metric == "transmit")),
            color=alt.Color("source:N", title=None),
            shape=alt.Shape("source:N", title=None),
            tooltip=["label", "source", "value"],
        ).properties(width=360, height=alt.Step(18)))
    return _titled(alt.vconcat(*charts), "Hotness model: published vs modelled (fit, predicted, extrapolation)",
                   source)


def grid_scores(grid: pl.DataFrame, source: str) -> alt.TopLevelMixin:
    """Score vs DS-EPLB per cell (EP size x drift scale), mean over seeds with the seeds' range, one panel per
    policy; the tuning cell is marked."""
    f = (grid.filter(pl.col("policy") != "DS-EPLB")
         .group_by("policy", "ep", "drift_scale")
         .agg(pl.col("score_vs_eplb").mean().alias("score"), pl.col("score_vs_eplb").min().alias("lo"),
              pl.col("score_vs_eplb").max().alias("hi"), (pl.col("role") == "tuning").any().alias("tuning"))
         .with_columns(pl.col("drift_scale").cast(pl.Utf8).alias("drift"))
         .sort("policy", "ep", "drift_scale"))
    base = alt.Chart(f).encode(x=alt.X("ep:O", title="EP size (devices)"), xOffset="drift:N",
                               color=alt.Color("drift:N", title="drift x calibrated"))
    chart = (base.mark_errorbar().encode(y=alt.Y("lo:Q", title="score vs DS-EPLB (100 = equal)",
                                                 scale=alt.Scale(zero=False)), y2="hi:Q")
             + base.mark_point(filled=True, size=50).encode(
                 y="score:Q", shape=alt.Shape("tuning:N", title="tuning cell"),
                 tooltip=["policy", "ep", "drift", "score", "lo", "hi", "tuning"])
             + alt.Chart(pl.DataFrame({"y": [100.0]})).mark_rule(strokeDash=[4, 3]).encode(y="y:Q"))
    return _titled(chart.properties(width=260, height=200).facet(column=alt.Column("policy:N", title=None)),
                   "Dynamic placement grid: score vs DS-EPLB per cell (mean and range over seeds)", source)


def grid_frontier(grid: pl.DataFrame, source: str) -> alt.TopLevelMixin:
    """Mean PAR against slots moved per policy (mean over seeds), one panel per EP size, the physical bound
    and the popularity oracle (a reference from DS-EPLB's first call on) as rules."""
    f = (grid.group_by("policy", "ep", "drift_scale")
         .agg(pl.col("mean_par").mean(), pl.col("transmit").mean(), pl.col("bound_par").mean(),
              pl.col("oracle_par").mean())
         .with_columns(pl.col("drift_scale").cast(pl.Utf8).alias("drift"))
         .sort("ep", "policy", "drift_scale"))
    points = alt.Chart(f).mark_point(filled=True).encode(
        x=alt.X("transmit:Q", title="slots moved (whole trace)"),
        y=alt.Y("mean_par:Q", title="mean PAR", scale=alt.Scale(zero=False)),
        color=alt.Color("policy:N"), shape=alt.Shape("drift:N", title="drift x calibrated"),
        tooltip=["policy", "ep", "drift", "mean_par", "transmit", "bound_par", "oracle_par"])
    bound = alt.Chart(f).mark_rule(strokeDash=[2, 2], color="gray").encode(y="mean(bound_par):Q")
    oracle = alt.Chart(f).mark_rule(strokeDash=[1, 3], color="black").encode(y="mean(oracle_par):Q")
    return _titled((points + bound + oracle).properties(width=220, height=180)
                   .facet(facet=alt.Facet("ep:O", title="EP size"), columns=4).resolve_scale(y="independent"),
                   "Dynamic placement grid: PAR vs slots moved (dashed: physical bound; dotted: popularity "
                   "oracle from DS-EPLB's first call on, a reference, not a bound)", source)
