import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start

log = start(snakemake)

import polars as pl

from moelab import plots
from moelab.placement import plots as placement_plots
from moelab.placement.workload_fit import source_text

name = snakemake.wildcards.workload
table = pl.read_parquet(snakemake.input.table).filter(pl.col("workload") == name)
chart = placement_plots.workload_predictions(table, name, source_text(table, [snakemake.input.model]))
o = snakemake.output
plots.save(chart, o.svg, o.png, o.html)
