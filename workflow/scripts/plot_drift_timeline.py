import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start

log = start(snakemake)

import polars as pl

from moelab import plots

o = snakemake.output
frame = pl.read_parquet(snakemake.input.timeline)
chart = plots.drift_timeline(frame, source=f"{frame['source_kind'][0]} trace {snakemake.wildcards.trace}, "
                                           "generated on CPU")
plots.save(chart, o.svg, o.png, o.html)
