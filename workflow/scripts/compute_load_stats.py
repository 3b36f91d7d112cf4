import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start, write_parquet

log = start(snakemake)

import polars as pl

from moelab import load_source, stats

src = load_source.read(snakemake.input.source, *snakemake.input.meta)  # a trace, or an imported hotness
p, hot = snakemake.params, src.hot
log.info("%s: hotness %s", src.source_id, hot.shape)
# EP sizes that do not divide a source's expert count are skipped for that source.
ep_sizes = [ep for ep in p.ep_sizes if src.num_experts % ep == 0]
ident = src.ident()
expect = stats.top20_expectation(src.config, p.seed, p.top20_draws)
layers = stats.layer_table(hot, src.concurrency, src.top_k, ep_sizes).with_columns(
    **{k: pl.lit(v) for k, v in {**ident, **expect}.items()})
write_parquet(layers, snakemake.output.layers)
for frame, path in ((stats.expert_table(hot), snakemake.output.experts),
                    (stats.device_table(hot, ep_sizes), snakemake.output.devices),
                    (stats.timeline_table(hot, p.timeline_window), snakemake.output.timeline)):
    write_parquet(frame.with_columns(**{k: pl.lit(v) for k, v in ident.items()}), path)
