"""Figures of expert placement: static placement (locality against balance), dynamic placement (PAR over
time, against slots moved, by devices and redundant slots), the workload models against published cells and the pinned grid."""

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


def grid_scores(grid: pl.DataFrame, source: str) -> alt.TopLevelMixin:
    """moelab against DS-EPLB three ways, one panel each: (a) the competition's score, (b) at its own cadence
    against DS-EPLB at its configured one, (c) against the strongest DS-EPLB a user could configure; per
    workload (colour) and EP size, mean over seeds with the seeds' range, the rate scale as the shape; the
    tuning cell is marked by a ring."""
    ours = grid.filter(pl.col("policy") == "moelab")
    ways = {"competition_score": "(a) the competition's score", "score_vs_eplb": "(b) own cadence vs DS-EPLB",
            "score_vs_strongest": "(c) vs the strongest DS-EPLB"}
    long = (ours.unpivot(index=["workload", "ep", "drift_scale", "seed", "role"], on=list(ways),
                         variable_name="way", value_name="score")
            .filter(pl.col("score").is_not_nan())
            .with_columns(pl.col("way").replace(ways))
            .group_by("way", "workload", "ep", "drift_scale")
            .agg(pl.col("score").mean().alias("mean"), pl.col("score").min().alias("lo"),
                 pl.col("score").max().alias("hi"), (pl.col("role") == "tuning").any().alias("tuning"))
            .with_columns(pl.format("x{}", pl.col("drift_scale")).alias("rates"))
            .sort("way", "workload", "ep", "drift_scale"))
    base = alt.Chart(long).encode(x=alt.X("ep:O", title="EP size (devices)"), xOffset="workload:N",
                                  color=alt.Color("workload:N"))
    chart = (base.mark_errorbar().encode(y=alt.Y("lo:Q", title="score vs DS-EPLB (100 = equal)",
                                                 scale=alt.Scale(zero=False)), y2="hi:Q")
             + base.mark_point(filled=True, size=50).encode(
                 y="mean:Q", shape=alt.Shape("rates:N", title="rates of change"),
                 tooltip=["way", "workload", "ep", "rates", "mean", "lo", "hi", "tuning"])
             + base.transform_filter(alt.datum.tuning).mark_point(size=160, color="black").encode(y="mean:Q")
             + alt.Chart(pl.DataFrame({"y": [100.0]})).mark_rule(strokeDash=[4, 3]).encode(y="y:Q"))
    return _titled(chart.properties(width=240, height=200).facet(column=alt.Column("way:N", title=None)),
                   "Dynamic placement grid: moelab vs DS-EPLB three ways (mean and range over seeds; ring: the "
                   "tuning cell)", source)


def grid_frontier(grid: pl.DataFrame, source: str) -> alt.TopLevelMixin:
    """Mean PAR against gigabytes moved per policy and DS-EPLB variant (mean over seeds and rate scales), one
    panel per workload and EP size, the physical bound and the popularity oracle (a reference from DS-EPLB's
    first call on) as rules."""
    f = (grid.group_by("workload", "policy", "ep")
         .agg(pl.col("mean_par").mean(), pl.col("gb_moved").mean(), pl.col("bound_par").mean(),
              pl.col("oracle_par").mean())
         .sort("workload", "ep", "policy"))
    points = alt.Chart(f).mark_point(filled=True).encode(
        x=alt.X("gb_moved:Q", title="GB of expert weights moved (whole trace, full model)"),
        y=alt.Y("mean_par:Q", title="mean PAR", scale=alt.Scale(zero=False)),
        color=alt.Color("policy:N"),
        tooltip=["workload", "policy", "ep", "mean_par", "gb_moved", "bound_par", "oracle_par"])
    bound = alt.Chart(f).mark_rule(strokeDash=[2, 2], color="gray").encode(y="mean(bound_par):Q")
    oracle = alt.Chart(f).mark_rule(strokeDash=[1, 3], color="black").encode(y="mean(oracle_par):Q")
    return _titled((points + bound + oracle).properties(width=200, height=160)
                   .facet(row=alt.Row("workload:N", title=None), column=alt.Column("ep:O", title="EP size"))
                   .resolve_scale(x="independent", y="independent"),
                   "Dynamic placement grid: PAR vs GB moved, moelab, Default, DS-EPLB and the DS-EPLB a user could "
                   "configure (dashed: physical bound; dotted: popularity oracle from DS-EPLB's first call on, a "
                   "reference, not a bound)", source)


def decision(table: pl.DataFrame, source: str) -> alt.TopLevelMixin:
    """Per imported load (a row) and EP size (a column): each candidate's modelled time on the reported part
    against the memory its budget of redundant slots costs per device; the chosen candidate (picked on the
    part before) ringed."""
    t = table.filter(pl.col("loadable")).sort("source", "ep", "redundant_per_device", "candidate")
    base = alt.Chart(t).encode(
        x=alt.X("memory_gb_per_device:Q", title="redundant slots' memory per device (GB)"),
        y=alt.Y("time_report:Q", title="modelled time, reported part", scale=alt.Scale(zero=False)),
        color=alt.Color("candidate:N"),
        tooltip=["source", "ep", "redundant_per_device", "candidate", "par_report", "gb_per_hour", "chosen",
                 "holds", "rebalancing_pays"])
    chosen = base.transform_filter("datum.chosen").mark_point(size=160, shape="circle", filled=False, color="black")
    return _titled((base.mark_line(point=True) + chosen).properties(width=220, height=160)
                   .facet(row=alt.Row("source:N", title=None), column=alt.Column("ep:O", title="EP size"))
                   .resolve_scale(y="independent"),
                   "The decision: modelled time per candidate and budget of redundant slots (ringed: the choice, "
                   "made on the part before the one shown)", source)


def workload_predictions(table: pl.DataFrame, workload: str, source: str) -> alt.TopLevelMixin:
    """One workload: modelled (mean and one standard deviation over seeds) and published, PAR and transmit, for
    each EP size (a column) and policy; the role (fit, predicted, not given) as the modelled point's shape."""
    order = ["Default", *(f"DS-EPLB@{i}" for i in (256, 512, 1024, 2048, 4096))]
    rows = []
    for r in table.iter_rows(named=True):
        for metric, title in (("par", "mean PAR"), ("transmit", "slots moved")):
            m, sd, pub = r[f"modelled_{metric}"], r[f"modelled_{metric}_std"] or 0.0, r[f"published_{metric}"]
            rows.append({"ep": r["ep"], "policy": r["policy"], "metric": title, "source": "modelled",
                         "role": r["role"], "value": m, "lo": m - sd, "hi": m + sd})
            if pub is not None:
                rows.append({"ep": r["ep"], "policy": r["policy"], "metric": title, "source": "published",
                             "role": r["role"], "value": pub, "lo": pub, "hi": pub})
    long = pl.DataFrame(rows)
    charts = []
    for title in ("mean PAR", "slots moved"):
        part = long.filter(pl.col("metric") == title)
        x = alt.X("policy:N", sort=order, title=None, axis=alt.Axis(labelAngle=-45))
        base = alt.Chart(part).encode(x=x, color=alt.Color("source:N", title=None), xOffset="source:N")
        chart = (base.mark_errorbar().encode(y=alt.Y("lo:Q", title=title, scale=alt.Scale(zero=False)), y2="hi:Q")
                 + base.mark_point(filled=True, size=45).encode(
                     y="value:Q", shape=alt.Shape("role:N", title="cell"),
                     tooltip=["ep", "policy", "source", "role", "value", "lo", "hi"]))
        charts.append(chart.properties(width=150, height=150).facet(
            column=alt.Column("ep:O", title="EP size (devices)")).resolve_scale(y="independent"))
    return _titled(alt.vconcat(*charts), f"Workload model {workload}: modelled vs published, by EP size and policy",
                   source)
