import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start

log = start(snakemake)

import polars as pl

from moelab import plots

o = snakemake.output
frame = pl.concat([pl.read_parquet(p) for p in snakemake.input.experts])
kind = ", ".join(sorted(frame["source_kind"].unique().to_list()))
chart = plots.expert_loads(frame, source=f"{kind} traces ({snakemake.wildcards.shape}), generated on CPU; "
                                         "shares over the whole trace")
plots.save(chart, o.svg, o.png, o.html)
