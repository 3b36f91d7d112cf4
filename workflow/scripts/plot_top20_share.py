import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start

log = start(snakemake)

import polars as pl

from moelab import plots

i, o = snakemake.input, snakemake.output
table = pl.read_parquet(i.table)
realised = (table.filter(pl.col("top20_expected").is_not_nan())
            .group_by("trace", "num_experts", "alpha", maintain_order=True)
            .agg(pl.col("top20_share", "top20_expected", "top20_claim_lo", "top20_claim_hi").mean()))
chart = plots.top20_share(realised, pl.read_parquet(i.sweep),
                          source="Synthetic power-law traces (CPU), mean over layers; expectation: Monte "
                                 "Carlo of the sampler; red: the reference document's claim")
plots.save(chart, o.svg, o.png, o.html)
