import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start

log = start(snakemake)

import polars as pl

from moelab import plots, provenance
from moelab.traces import read_meta

o = snakemake.output
chart = plots.layer_loads(pl.read_parquet(snakemake.input.experts),
                          source=provenance.of_trace(read_meta(snakemake.input.trace)))
plots.save(chart, o.svg, o.png, o.html)
