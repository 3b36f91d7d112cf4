import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start, write_parquet

log = start(snakemake)

import polars as pl

from moelab.placement import static_eval
from moelab.traces import read_trace

p = snakemake.params
trace = read_trace(snakemake.input.trace)
m = trace.meta
table, placements = static_eval.static_table(trace, p.devices, p.split_fraction, p.load_slack, p.seed, p.cv_budgets,
                             p.balance_windows)
write_parquet(table.with_columns(trace=pl.lit(m.source_id), source_kind=pl.lit(m.source_kind),
                                  capture_device=pl.lit(m.capture_device)), snakemake.output.scores)
decoder = pl.col("layer").replace_strict(list(range(m.n_moe_layers)), list(m.layer_index))
write_parquet(placements.with_columns(decoder_layer=decoder, trace=pl.lit(m.source_id),
                                      num_experts=pl.lit(m.num_experts)), snakemake.output.placements)
log.info("%s: %d placements scored", m.source_id, table.height)
