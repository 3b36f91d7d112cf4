"""Tables and figures of the routing study (altair; saved by ``moelab.plots.save``)."""

from __future__ import annotations

import altair as alt
import polars as pl

from moelab import provenance
from moelab.routing.spec import PerftSpec, StudySpec


CAPACITY_PROVENANCE = ("Drop rates computed exactly (no timing) per batch: gaussian = top-k of i.i.d. N(0,1) "
                       "logits, one seeded batch per draw; traces = consecutive iterations of one layer at the "
                       "trace's own E and k (smaller k as prefixes only where weights are distinct). Slots first "
                       "come, first served in token order. Load CV = requested (pre-capacity) loads.")


def capacity_summary(drops: pl.DataFrame) -> pl.DataFrame:
    """Mean and std over batches (draws for gaussian; layers x batches for traces)."""
    return (drops.group_by("source", "source_kind", "num_experts", "top_k", "capacity_factor")
            .agg(batches=pl.len(), tokens=pl.col("tokens").first(), capacity=pl.col("capacity").first(),
                 drop_rate=pl.col("drop_rate").mean(), drop_rate_std=pl.col("drop_rate").std(),
                 token_drop_rate=pl.col("token_drop_rate").mean(), load_cv=pl.col("load_cv").mean(),
                 max_mean=pl.col("max_mean").mean())
            .sort("source_kind", "source", "num_experts", "top_k", "capacity_factor"))


def drop_rate(drops: pl.DataFrame) -> alt.TopLevelMixin:
    """Drop rate and token drop rate against the capacity factor, one panel per source; lines per (E, k),
    with the batch-to-batch standard deviation as a band."""
    s = capacity_summary(drops).with_columns(
        series=pl.format("E={} k={}", pl.col("num_experts"), pl.col("top_k")),
        lo=(pl.col("drop_rate") - pl.col("drop_rate_std").fill_null(0)).clip(0, 1),
        hi=(pl.col("drop_rate") + pl.col("drop_rate_std").fill_null(0)).clip(0, 1))
    base = alt.Chart().encode(x=alt.X("capacity_factor:Q", title="capacity factor", scale=alt.Scale(zero=False)),
                              color=alt.Color("series:N", title="experts, top-k"))
    band = base.mark_area(opacity=0.15).encode(y="lo:Q", y2="hi:Q")
    line = base.mark_line(point=True).encode(
        y=alt.Y("drop_rate:Q", title="drop rate (share of pairs)"),
        tooltip=["source", "series", "capacity_factor", "capacity", "drop_rate", "token_drop_rate", "load_cv"])
    tok = base.mark_line(strokeDash=[4, 3]).encode(y="token_drop_rate:Q")
    chart = alt.layer(band, line, tok, data=s).properties(width=220, height=170).facet(
        facet=alt.Facet("source:N", title=None), columns=3)
    return chart.properties(title=alt.TitleParams(
        "Drop rate vs capacity factor (solid: pairs; dashed: tokens with every choice dropped)",
        subtitle=provenance.of_rows(drops, "source"), anchor="start")).resolve_scale(y="independent")


def capacity_throughput(frame: pl.DataFrame) -> alt.TopLevelMixin:
    """Timed assign + pack + combine throughput against the capacity factor (median per case)."""
    f = frame.with_columns(series=pl.format("E={} k={}", pl.col("num_experts"), pl.col("top_k")))
    dev = ", ".join(sorted(set(f.get_column("device_name").to_list())))
    chart = alt.Chart(f).mark_line(point=True).encode(
        x=alt.X("capacity_factor:Q", title="capacity factor", scale=alt.Scale(zero=False)),
        y=alt.Y("tokens_per_s:Q", title="tokens/s (median)", scale=alt.Scale(zero=False)),
        color=alt.Color("series:N", title="experts, top-k"),
        tooltip=["source", "series", "capacity_factor", "tokens", "hidden", "tokens_per_s", "latency_p50_ms"],
    ).properties(width=220, height=170).facet(facet=alt.Facet("source:N", title=None), columns=3)
    return chart.properties(title=alt.TitleParams(
        "Pack/combine throughput vs capacity factor (no expert compute)",
        subtitle=f"timed on {dev} (CPU, one thread), width {f.get_column('hidden')[0]}; {provenance.of_rows(f, 'source')}",
        anchor="start")).resolve_scale(y="independent")


def study_source(train: StudySpec, study: str = "base") -> str:
    where = "on CPU" if train.device == "cpu" else f"on {train.device}"
    return (f"study {study!r}: tiny MoE LM trained on the corpus ({train.tokenizer} tokens) {where}: "
            f"E={train.num_experts}, k={train.top_k}, width {train.dim}, {train.layers} layers, "
            f"{train.steps} steps, {train.seeds} seeds, {train.arch} router; causal evaluation on "
            f"held-out text")


def studies_source(studies: dict[str, StudySpec]) -> str:
    return " | ".join(study_source(spec, name) for name, spec in studies.items())


def study_summary(metrics: pl.DataFrame) -> pl.DataFrame:
    """Mean and std over seeds per strategy and capacity factor."""
    cols = ["val_ppl", "drop_rate", "token_drop_rate", "load_cv", "entropy"]
    return (metrics.group_by("study", "strategy", "capacity_factor")
            .agg(seeds=pl.len(), **{c: pl.col(c).mean() for c in cols},
                 val_ppl_std=pl.col("val_ppl").std(), val_ppl_batch=pl.col("val_ppl_batch").mean())
            .select("study", "strategy", "capacity_factor", "seeds", "val_ppl", "val_ppl_std", "val_ppl_batch",
                    *cols[1:])
            .sort("study", "capacity_factor", "val_ppl", "strategy"))


def _mean_std(frame: pl.DataFrame, keys: list[str], col: str) -> pl.DataFrame:
    # sorted: group_by's order is not deterministic, and the figures must be the same bytes every run
    return frame.group_by(keys).agg(mean=pl.col(col).mean(), std=pl.col(col).std().fill_null(0.0)).sort(keys)


def frontier(metrics: pl.DataFrame, throughput: pl.DataFrame, source: str) -> alt.TopLevelMixin:
    """Validation perplexity against training tokens/s, one point per strategy x CF (mean +/- std over
    seeds on both axes)."""
    keys = ["study", "strategy", "capacity_factor"]
    joined = metrics.join(throughput.select(*keys, "seed", "tokens_per_s"), on=[*keys, "seed"])
    p = _mean_std(joined, keys, "val_ppl").rename({"mean": "val_ppl", "std": "ppl_std"})
    t = _mean_std(joined, keys, "tokens_per_s").rename({"mean": "tokens_per_s", "std": "tps_std"})
    f = p.join(t, on=keys).with_columns(
        ppl_lo=pl.col("val_ppl") - pl.col("ppl_std"), ppl_hi=pl.col("val_ppl") + pl.col("ppl_std"),
        tps_lo=pl.col("tokens_per_s") - pl.col("tps_std"), tps_hi=pl.col("tokens_per_s") + pl.col("tps_std"),
        cf=pl.col("capacity_factor").cast(pl.String))
    dev = ", ".join(sorted(set(throughput.get_column("device_name").to_list())))
    base = alt.Chart().encode(color=alt.Color("strategy:N"))
    pts = base.mark_point(filled=True, size=70).encode(
        x=alt.X("tokens_per_s:Q", title="training tokens/s (mean over seeds)", scale=alt.Scale(zero=False)),
        y=alt.Y("val_ppl:Q", title="validation perplexity (causal)", scale=alt.Scale(zero=False)),
        shape=alt.Shape("cf:N", title="capacity factor"),
        tooltip=["strategy", "capacity_factor", "val_ppl", "ppl_std", "tokens_per_s", "tps_std"])
    ey = base.mark_rule().encode(x="tokens_per_s:Q", y="ppl_lo:Q", y2="ppl_hi:Q")
    ex = base.mark_rule().encode(y="val_ppl:Q", x="tps_lo:Q", x2="tps_hi:Q")
    chart = alt.layer(ey, ex, pts, data=f).properties(width=420, height=300).facet(
        facet=alt.Facet("study:N", title=None), columns=2).resolve_scale(x="independent", y="independent")
    return chart.properties(title=alt.TitleParams("Quality/throughput frontier of the routing strategies",
                                                  subtitle=f"{source}; timed on {dev}", anchor="start"))


def convergence(curves: pl.DataFrame, source: str) -> alt.TopLevelMixin:
    keys = ["strategy", "capacity_factor", "step"]
    v = _mean_std(curves.drop_nulls("val_loss"), keys, "val_loss")
    chart = alt.Chart(v).mark_line(point=True).encode(
        x=alt.X("step:Q"), y=alt.Y("mean:Q", title="validation loss (nats/token, mean over seeds)",
                                   scale=alt.Scale(zero=False)),
        color="strategy:N", tooltip=["strategy", "capacity_factor", "step", "mean", "std"],
    ).properties(width=300, height=220).facet(column=alt.Column("capacity_factor:N", title="capacity factor"))
    return chart.properties(title=alt.TitleParams("Convergence per strategy", subtitle=source, anchor="start"))


def load_vs_ppl(metrics: pl.DataFrame, source: str) -> alt.TopLevelMixin:
    keys = ["study", "strategy", "capacity_factor"]
    f = (metrics.group_by(keys).agg(load_cv=pl.col("load_cv").mean(), val_ppl=pl.col("val_ppl").mean(),
                                    drop_rate=pl.col("drop_rate").mean())
         .sort(keys).with_columns(cf=pl.col("capacity_factor").cast(pl.String)))
    chart = alt.Chart(f).mark_point(filled=True, size=70).encode(
        x=alt.X("load_cv:Q", title="load CV of requested (pre-capacity) loads"),
        y=alt.Y("val_ppl:Q", title="validation perplexity", scale=alt.Scale(zero=False)),
        color="strategy:N", shape=alt.Shape("cf:N", title="capacity factor"),
        tooltip=["study", "strategy", "capacity_factor", "load_cv", "val_ppl", "drop_rate"]
    ).properties(width=380, height=260).facet(facet=alt.Facet("study:N", title=None), columns=2)
    return chart.resolve_scale(y="independent").properties(title=alt.TitleParams(
        "Load balance vs quality (mean over seeds)", subtitle=source, anchor="start"))


def expert_load(loads: pl.DataFrame, source: str) -> alt.TopLevelMixin:
    cf = loads.get_column("capacity_factor").max()
    # seed 0 only: expert ids are arbitrary labels, not aligned across seeds
    f = loads.filter((pl.col("capacity_factor") == cf) & (pl.col("seed") == 0))
    chart = alt.Chart(f).mark_bar().encode(
        x=alt.X("expert:O"), y=alt.Y("share:Q", title="share of requested pairs"),
        color=alt.Color("layer:N"), xOffset="layer:N", tooltip=["strategy", "layer", "expert", "share"],
    ).properties(width=160, height=120).facet(facet=alt.Facet("strategy:N", title=None), columns=4)
    return chart.properties(title=alt.TitleParams(f"Requested expert load per strategy (CF {cf}, validation, "
                                                  f"seed 0)", subtitle=source, anchor="start"))


def routing_heatmap(heat: pl.DataFrame, source: str) -> alt.TopLevelMixin:
    cf = heat.get_column("capacity_factor").max()
    f = heat.filter((pl.col("capacity_factor") == cf) & (pl.col("layer") == 0))
    chart = alt.Chart(f).mark_rect().encode(
        x=alt.X("position:O", title="token position", axis=alt.Axis(labels=False, ticks=False)),
        y=alt.Y("expert:O"), color=alt.Color("weight:Q", title="combine weight", scale=alt.Scale(scheme="blues")),
        tooltip=["strategy", "position", "expert", "weight"],
    ).properties(width=260, height=90).facet(facet=alt.Facet("strategy:N", title=None), columns=3)
    return chart.properties(title=alt.TitleParams(
        f"Token x expert routing, layer 0, first validation sequence (CF {cf}, seed 0; blank = dropped)",
        subtitle=source, anchor="start"))


def token_type(pref: pl.DataFrame, source: str) -> alt.TopLevelMixin:
    cf = pref.get_column("capacity_factor").max()
    f = pref.filter((pl.col("capacity_factor") == cf) & (pl.col("layer") == 0) & (pl.col("tokens") > 0)
                    & (pl.col("seed") == 0))  # expert ids are not aligned across seeds
    chart = alt.Chart(f).mark_rect().encode(
        x=alt.X("expert:O"), y=alt.Y("token_type:N", title=None),
        color=alt.Color("share:Q", title="share of the type's tokens", scale=alt.Scale(scheme="oranges")),
        tooltip=["strategy", "token_type", "expert", "share"],
    ).properties(width=150, height=100).facet(facet=alt.Facet("strategy:N", title=None), columns=4)
    return chart.properties(title=alt.TitleParams(
        f"Expert preference by token type: strongest requested expert, layer 0 (CF {cf}, seed 0)",
        subtitle=source, anchor="start"))


def study_charts(frames: dict[str, pl.DataFrame], studies: dict[str, StudySpec]) -> dict[str, alt.TopLevelMixin]:
    """The load/quality figure for every study; the per-strategy detail figures for the base study."""
    base = {k: f.filter(pl.col("study") == "base") for k, f in frames.items()}
    src = study_source(studies["base"])
    return {"routing_convergence": convergence(base["curves"], src),
            "routing_load_vs_ppl": load_vs_ppl(frames["metrics"], studies_source(studies)),
            "routing_expert_load": expert_load(base["loads"], src),
            "routing_heatmap": routing_heatmap(base["heatmap"], src),
            "routing_token_type": token_type(base["preference"], src)}


def perft_source(results: pl.DataFrame, cfg: PerftSpec) -> str:
    domain = results.get_column("domain")[0]
    return (f"PERFT on the frozen capture.models checkpoint {cfg.model!r}, fine-tuned {cfg.steps} steps on "
            f"the {domain} domain of the corpus (train part), scored on its held-out part; CPU")


def perft_frontier(results: pl.DataFrame, curves: pl.DataFrame, source: str) -> alt.TopLevelMixin:
    f = results.with_columns(params=pl.col("trainable_params").clip(lower_bound=1))
    pts = alt.Chart(f).mark_point(filled=True, size=80).encode(
        x=alt.X("params:Q", title="trainable parameters (base: shown at 1)", scale=alt.Scale(type="log")),
        y=alt.Y("val_loss:Q", title="held-out loss (nats/token)", scale=alt.Scale(zero=False)),
        color=alt.Color("kind:N", title="PERFT"),
        tooltip=["variant", "trainable_params", "adapters", "active", "base_val_loss", "val_loss"],
    ).properties(width=320, height=240)
    labels = pts.mark_text(align="left", dx=7, fontSize=10).encode(text="variant:N")
    curve = alt.Chart(curves.drop_nulls("val_loss")).mark_line(point=True).encode(
        x=alt.X("step:Q"), y=alt.Y("val_loss:Q", title="held-out loss", scale=alt.Scale(zero=False)),
        color=alt.Color("variant:N"), tooltip=["variant", "step", "val_loss"],
    ).properties(width=300, height=240)
    return alt.hconcat(pts + labels, curve).resolve_scale(color="independent").properties(title=alt.TitleParams(
        "Routed adapters: loss vs trainable parameters", subtitle=source, anchor="start"))
