import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start

log = start(snakemake)

import polars as pl

from moelab import plots

o = snakemake.output
frame = pl.concat([pl.read_parquet(p) for p in snakemake.input.layers], how="diagonal_relaxed")
chart = plots.coactivation_gain(frame, source="captured and gaussian-proxy traces (CPU capture); groups fitted on "
                                              "some documents, scored on the others; dashed: the same pipeline on "
                                              "a null with both margins kept")
plots.save(chart, o.svg, o.png, o.html)
