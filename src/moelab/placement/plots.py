"""Figures of expert placement: static placement (locality against balance), dynamic placement (PAR over
time, against slots moved, by devices and redundant slots), the hotness calibration and the pinned grid."""

from __future__ import annotations

import textwrap

import altair as alt
import polars as pl

from moelab.plots import _subtitle


def _titled(chart: alt.TopLevelMixin, title: str, source: str) -> alt.TopLevelMixin:
    """The title, and the data's provenance as a subtitle wrapped to the figure's width."""
    return chart.properties(title=alt.TitleParams(title, subtitle=textwrap.wrap(source, 110), anchor="start"))


def static_placement(frame: pl.DataFrame, matched: pl.DataFrame, source: str, factor: float) -> alt.TopLevelMixin:
    """Devices touched per token (top) and the device load CV it costs (middle) against the number of
    devices, per policy (mean over layers): a locality win counts only at a matched load CV. The balanced
    co-activation placement runs once per CV budget; the placement ``tables.static_matched`` chose on fitted
    data (frequency-balanced, capped or balanced) is drawn dashed. Bottom: that choice's held-out devices per token relative
    to frequency-balanced for the captured and proxy traces on one chart, and (dashed) ``factor`` x each
    untrained control's, the line a trained checkpoint must be under to meet the goal."""
    mean = (frame.filter(pl.col("policy") != "coactivation_balanced")
            .group_by("trace", "devices", "policy")
            .agg(pl.col("devices_per_token", "load_cv").mean()))
    chosen = "chosen on fitted data (matched CV)"
    best = (matched.drop_nulls("devices_per_token")
            .select("trace", "devices", "devices_per_token", "load_cv", policy=pl.lit(chosen)))
    mean = pl.concat([mean, best], how="diagonal_relaxed").sort("trace", "devices", "policy")
    dashed = alt.condition(alt.datum.policy == chosen, alt.value([4, 3]), alt.value([1, 0]))
    base = alt.Chart(mean).encode(
        x=alt.X("devices:O", title="devices"), color=alt.Color("policy:N", legend=alt.Legend(labelLimit=400)),
        strokeDash=dashed,
        tooltip=["trace:N", "policy:N", "devices:Q", "devices_per_token:Q", "load_cv:Q"])
    fan = base.mark_line(point=True).encode(y=alt.Y("devices_per_token:Q", title="distinct devices per token"))
    cv = base.mark_line(point=True).encode(y=alt.Y("load_cv:Q", title="device load CV"))
    checkpoints = matched.filter(pl.col("source_kind").is_in(["captured", "proxy"]))
    gain = checkpoints.drop_nulls("vs_frequency").select("trace", "devices", "vs_frequency", "matched_policy",
                                                         "matched_cv_budget", "cv_vs_frequency")
    goal = (checkpoints.drop_nulls("control_vs_frequency")
            .select("devices", vs_frequency=factor * pl.col("control_vs_frequency"),
                    trace=pl.format(f"{factor:g} x {{}} (goal: {{}} below)", "control", "trace")))
    line = alt.Chart(pl.concat([gain, goal], how="diagonal_relaxed").sort("trace", "devices")).mark_line(
        point=True).encode(
        x=alt.X("devices:O", title="devices"),
        y=alt.Y("vs_frequency:Q", title="devices per token vs frequency-balanced (held out)",
                axis=alt.Axis(format="%")),
        color=alt.Color("trace:N", title="chosen placement, held out",
                        legend=alt.Legend(labelLimit=400, titleLimit=400)),
        strokeDash=alt.condition(alt.FieldOneOfPredicate("trace", goal.get_column("trace").unique().sort().to_list()),
                                 alt.value([4, 3]), alt.value([1, 0])),
        tooltip=["trace:N", "devices:Q", "matched_policy:N", "matched_cv_budget:Q", "vs_frequency:Q",
                 "cv_vs_frequency:Q"])
    chart = alt.vconcat(
        fan.properties(width=200, height=180).facet(column=alt.Column("trace:N", title=None)),
        cv.properties(width=200, height=120).facet(column=alt.Column("trace:N", title=None)),
        line.properties(width=320, height=180)).resolve_scale(color="independent", strokeDash="independent")
    return chart.properties(title=alt.TitleParams("Static placement: all-to-all fan-out per token, and its load "
                                                  "balance", subtitle=source, anchor="start"))


def static_frontier(summary: pl.DataFrame, source: str) -> alt.Chart:
    """Devices per token relative to frequency-balanced against the scored load CV, one line per trace
    through the balanced co-activation placement's CV budgets; the frequency-balanced placement is the
    hollow point at 0. Lower and further left is better. ``summary``: tables.static_placement_summary."""
    data = (summary.filter(pl.col("policy").is_in(["coactivation_balanced", "frequency"]))
            .sort("trace", "devices", "policy", "cv_budget"))
    base = alt.Chart(data).encode(
        x=alt.X("load_cv:Q", title="device load CV (scored part)"),
        y=alt.Y("vs_frequency:Q", title="devices per token vs frequency-balanced", axis=alt.Axis(format="%")),
        color=alt.Color("trace:N"),
        tooltip=["trace:N", "devices:Q", "policy:N", "cv_budget:Q", "load_cv:Q", "vs_frequency:Q"])
    layers = alt.layer(
        base.transform_filter(alt.datum.policy == "coactivation_balanced").mark_line(point=True)
        .encode(order="cv_budget:Q"),
        base.transform_filter(alt.datum.policy == "frequency").mark_point(filled=False, size=80),
    ).properties(width=220, height=200)
    return _subtitle(layers.facet(facet=alt.Facet("devices:O", title="devices"), columns=4),
                     "Static placement: locality against balance (balanced co-activation, one point per CV budget)",
                     source)


def dynamic_frontier(frame: pl.DataFrame, source: str) -> alt.Chart:
    """Mean PAR against slots moved per policy as the call interval varies (points labelled by interval)."""
    base = alt.Chart(frame.sort("trace", "policy", "interval")).encode(
        x=alt.X("transmit:Q", title="slots moved (whole run)"),
        y=alt.Y("mean_par:Q", title="mean PAR", scale=alt.Scale(zero=False)),
        color=alt.Color("policy:N"),
    )
    chart = (base.mark_line(point=True, order=False)
             + base.mark_text(dx=6, dy=-6, fontSize=9).encode(text="interval:Q"))
    return _subtitle(chart.properties(width=260, height=200).facet(facet=alt.Facet("trace:N"), columns=2),
                     "Dynamic placement: PAR vs slots moved, by call interval", source)


def dynamic_slots(frame: pl.DataFrame, source: str) -> alt.TopLevelMixin:
    """Mean PAR (top) and slots moved (bottom) against redundant slots per device, one column per device
    count, per policy; the tooltip has the score against DS-EPLB on the same devices and slots."""
    f = frame.sort("trace", "sweep_devices", "policy", "redundant_slots")
    base = alt.Chart(f).encode(x=alt.X("redundant_slots:O", title="redundant slots per device"),
                               color=alt.Color("policy:N"),
                               tooltip=["trace", "policy", "sweep_devices", "redundant_slots", "mean_par",
                                        "transmit", "score_vs_eplb"])
    par = base.mark_line(point=True).encode(y=alt.Y("mean_par:Q", title="mean PAR", scale=alt.Scale(zero=False)))
    moved = base.mark_line(point=True).encode(y=alt.Y("transmit:Q", title="slots moved (whole run)"))
    chart = alt.vconcat(
        par.properties(width=160, height=150).facet(column=alt.Column("sweep_devices:O", title="devices"),
                                                    row=alt.Row("trace:N", title=None)),
        moved.properties(width=160, height=120).facet(column=alt.Column("sweep_devices:O", title="devices"),
                                                      row=alt.Row("trace:N", title=None)))
    return chart.properties(title=alt.TitleParams("Dynamic placement by devices and redundant slots",
                                                  subtitle=source, anchor="start"))


def par_timeline(timeline: pl.DataFrame, source: str, window: int = 64) -> alt.Chart:
    """PAR over iterations (mean over layers, averaged in windows) per placement policy."""
    binned = (timeline.with_columns(bin=(pl.col("iteration") // window) * window)
              .group_by("trace", "policy", "bin", maintain_order=True).agg(pl.col("par").mean())
              .sort("trace", "policy", "bin"))
    chart = alt.Chart(binned).mark_line().encode(
        x=alt.X("bin:Q", title=f"iteration ({window}-iteration means)"),
        y=alt.Y("par:Q", title="PAR (max / mean device load)", scale=alt.Scale(zero=False)),
        color=alt.Color("policy:N"),
    ).properties(width=320, height=200)
    return _subtitle(chart.facet(facet=alt.Facet("trace:N"), columns=2), "Dynamic placement: PAR over time",
                     source)


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
