import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start

log = start(snakemake)

import polars as pl

from moelab import tables

i, o, p = snakemake.input, snakemake.output, snakemake.params.placement
static = pl.concat([pl.read_parquet(f) for f in i.static], how="diagonal_relaxed")
cache = pl.concat([pl.read_parquet(f) for f in i.cache], how="diagonal_relaxed")
static.write_parquet(o.static)
cache.write_parquet(o.cache)
split = f"fitted on the first {p['split_fraction']:.0%} of iterations, scored on the rest; mean over layers"
tables.write_html(tables.static_placement_summary(static), o.static_html, "Static expert placement",
                  f"{split}; captured (CPU) and proxy traces" + (" and synthetic scenarios"
                                                                 if p["include_synthetic"] else ""))
tables.write_html(tables.cache_summary(cache), o.cache_html, "Expert cache: demand miss rate",
                  f"{split}; Belady is the offline optimum (a bound, not a policy)")
