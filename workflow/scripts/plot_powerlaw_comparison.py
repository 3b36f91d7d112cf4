import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start

log = start(snakemake)

import polars as pl

from moelab import plots

i, o = snakemake.input, snakemake.output
chart = plots.powerlaw_comparison(
    pl.read_parquet(i.samples), pl.read_parquet(i.curves), pl.read_parquet(i.ranks),
    source=f"Synthetic: moelab's inverse-CDF sampler on [1, 0.8 x {snakemake.params.reference_tokens}], "
           "computed on CPU (not a captured model)")
plots.save(chart, o.svg, o.png, o.html)
