import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start, write_parquet

log = start(snakemake)

import polars as pl

from moelab import tables

frame = pl.concat([pl.read_parquet(p) for p in snakemake.input.layers], how="diagonal_relaxed")
write_parquet(frame, snakemake.output.table)
tables.write_html(tables.coactivation_summary(frame), snakemake.output.html, "Co-activation per trace",
                  "mean over layers; gain = test-split within-group pair share / both-margins null; "
                  "traces: synthetic (CPU-generated), captured and proxy (CPU capture)")
