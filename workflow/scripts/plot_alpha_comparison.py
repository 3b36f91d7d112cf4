import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start

log = start(snakemake)

import polars as pl

from moelab import plots

o = snakemake.output
frame = pl.read_parquet(snakemake.input.table)
kinds = ", ".join(sorted(frame["source_kind"].unique().to_list()))
chart = plots.alpha_comparison(frame, source=f"{kinds} traces; one point per MoE layer; layers whose loads span "
                                             "less than 2x identify no alpha and are left out")
plots.save(chart, o.svg, o.png, o.html)
