import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start, write_parquet

log = start(snakemake)

import polars as pl

from moelab import hotness, stats
from moelab.traces import read_trace

trace = read_trace(snakemake.input.trace)
m, p = trace.meta, snakemake.params
hot = hotness.from_trace(trace)
log.info("%s: hotness %s", m.source_id, hot.shape)
# EP sizes that do not divide a captured model's expert count are skipped for that trace.
ep_sizes = [ep for ep in p.ep_sizes if m.num_experts % ep == 0]
ident = {"trace": m.source_id, "source_kind": m.source_kind, "num_experts": m.num_experts,
         "top_k": m.top_k, "domain": m.domains[0] if len(m.domains) == 1 else "mixed",
         "alpha": float(m.config.get("scenario", {}).get("alpha", float("nan")))}
expect = stats.top20_expectation(m.config, p.seed, p.top20_draws)
layers = stats.layer_table(hot, m.concurrency, m.top_k, ep_sizes).with_columns(
    **{k: pl.lit(v) for k, v in {**ident, **expect}.items()})
write_parquet(layers, snakemake.output.layers)
for frame, path in ((stats.expert_table(hot), snakemake.output.experts),
                    (stats.device_table(hot, ep_sizes), snakemake.output.devices),
                    (stats.timeline_table(hot, p.timeline_window), snakemake.output.timeline)):
    write_parquet(frame.with_columns(**{k: pl.lit(v) for k, v in ident.items()}), path)
