import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start, write_parquet

log = start(snakemake)

import polars as pl

from moelab import tables

frame = pl.concat([pl.read_parquet(p) for p in snakemake.input.summaries], how="diagonal_relaxed")
write_parquet(frame, snakemake.output.table)
tables.write_html(frame, snakemake.output.html, "Captured traces",
                  "one row per configured model; tokens are the serving stream's (iterations x concurrency)")
