import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start

log = start(snakemake)

import polars as pl

from moelab import plots, provenance, tables
from moelab.placement import plots as placement_plots

i, o = snakemake.input, snakemake.output
static = pl.read_parquet(i.static)
cache = pl.read_parquet(i.cache)
source = "traces: " + provenance.of_rows(static, "trace", "source_kind", "capture_device") + "; fit on the first part, scored on the rest"
matched = pl.read_parquet(i.matched)
plots.save(placement_plots.static_placement(static, matched, source, tables.CONTROL_FACTOR), o.svg, o.png, o.html)
plots.save(placement_plots.static_frontier(tables.static_placement_summary(static), source), o.frontier_svg,
           o.frontier_png, o.frontier_html)
plots.save(plots.cache_miss(cache, source), o.cache_svg, o.cache_png, o.cache_html)
plots.save(plots.prefetch_hits(pl.read_parquet(i.prefetch), source), o.prefetch_svg, o.prefetch_png,
           o.prefetch_html)
