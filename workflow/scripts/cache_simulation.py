import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start, write_parquet

log = start(snakemake)

import polars as pl

from moelab import cache
from moelab.traces import read_trace

p, o = snakemake.params, snakemake.output
trace = read_trace(snakemake.input.trace)
m = trace.meta
ident = {"trace": pl.lit(m.source_id), "source_kind": pl.lit(m.source_kind)}
table = cache.cache_table(trace, p.cache_capacities, p.split_fraction)
write_parquet(table.with_columns(**ident), o.cache)
prefetch = cache.prefetch_table(trace, p.prefetch_budgets, p.split_fraction)
write_parquet(prefetch.with_columns(**ident), o.prefetch)
log.info("%s: %d cache runs, %d prefetch cells", m.source_id, table.height, prefetch.height)
