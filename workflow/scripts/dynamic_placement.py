import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start, write_parquet

log = start(snakemake)

import polars as pl

from moelab import load_source
from moelab.placement import dynamic_eval
from moelab.placement.policy_specs import DynamicPolicies

d = dynamic_eval.DynamicSpec.from_config(snakemake.params.dynamic)
pol = DynamicPolicies.from_config(snakemake.params.policies)
m = load_source.read(snakemake.input.source, *snakemake.input.meta)  # a trace, or an imported hotness
hot = m.hot  # once: both the policies and the interval sweep replay it
runs = dynamic_eval.run_policies(hot, d, pol, record=True)
summary, timeline = dynamic_eval.evaluate(hot, d, pol, runs)
moves = dynamic_eval.redeployments(runs).with_columns(
    decoder_layer=pl.col("layer").replace_strict(list(range(len(m.layer_index))), list(m.layer_index)),
    trace=pl.lit(m.source_id), num_experts=pl.lit(m.num_experts))
write_parquet(moves, snakemake.output.redeployments)
ident = {"trace": m.source_id, "source_kind": m.source_kind, "devices": d.devices}
write_parquet(summary.with_columns(**{k: pl.lit(v) for k, v in ident.items()}), snakemake.output.summary)
write_parquet(timeline.with_columns(**{k: pl.lit(v) for k, v in ident.items()}), snakemake.output.timeline)
frontier = dynamic_eval.sweep(hot, d, pol, snakemake.params.call_intervals)
write_parquet(frontier.with_columns(**{k: pl.lit(v) for k, v in ident.items()}), snakemake.output.sweep)
slots = dynamic_eval.capacity_sweep(hot, d, pol, snakemake.params.sweep_devices, snakemake.params.sweep_slots)
write_parquet(slots.with_columns(trace=pl.lit(m.source_id), source_kind=pl.lit(m.source_kind)),
              snakemake.output.slots)
for r in summary.iter_rows(named=True):
    log.info("%s: PAR %.3f, %d slots moved, score %.1f", r["policy"], r["mean_par"], r["transmit"], r["score_vs_eplb"])
