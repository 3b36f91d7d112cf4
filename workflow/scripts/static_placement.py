import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start

log = start(snakemake)

import polars as pl

from moelab.placement import evaluate
from moelab.traces import read_trace

p = snakemake.params.placement
trace = read_trace(snakemake.input.trace)
m = trace.meta
table = evaluate.static_table(trace, p["devices"], p["split_fraction"], p["load_slack"], snakemake.params.seed)
table.with_columns(trace=pl.lit(m.source_id), source_kind=pl.lit(m.source_kind)).write_parquet(snakemake.output[0])
log.info("%s: %d placements scored", m.source_id, table.height)
