import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start, write_parquet

log = start(snakemake)

import polars as pl

from moelab import plots, tables
from moelab.routing import plots as rplots
from moelab.routing.spec import PerftSpec

o = snakemake.output
results = pl.read_parquet(snakemake.input.results)
source = rplots.perft_source(results, PerftSpec.from_config(snakemake.params.perft))
write_parquet(results, o.table)
tables.write_html(results.drop("model"), o.html, "Routed adapters (PERFT) on the frozen checkpoint", source)
plots.save(rplots.perft_frontier(results, pl.read_parquet(snakemake.input.curves), source), o.fig_svg, o.fig_png,
           o.fig_html)
