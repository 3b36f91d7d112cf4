import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start, write_parquet

log = start(snakemake)

import polars as pl

from moelab import plots, tables
from moelab.routing import plots as rplots

o = snakemake.output
drops = pl.concat([pl.read_parquet(f) for f in snakemake.input.drops])
summary = rplots.capacity_summary(drops)
write_parquet(summary, o.table)
tables.write_html(summary, o.html, "Drop rate vs capacity factor", rplots.CAPACITY_PROVENANCE)
plots.save(rplots.drop_rate(drops), o.fig_svg, o.fig_png, o.fig_html)
