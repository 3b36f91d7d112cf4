import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start, write_parquet

log = start(snakemake)

import json

import polars as pl

from moelab import plots, tables
from moelab.placement import plots as placement_plots

i, o = snakemake.input, snakemake.output
cells = pl.read_parquet(i.cells)
fitted = json.loads(open(i.model).read())
m = fitted["model"]
write_parquet(cells, o.table)
source = (f"published: {fitted['source']}; modelled: moelab's Default and DS-EPLB (global, one redundant slot "
          f"per device) on synthetic hotness from the calibrated model (skew {m['skew']:.3g}, "
          f"{m['tokens']:.0f} tokens per iteration, drift {m['drift']:.3g} per iteration, {m['iterations']} "
          f"iterations; seed {fitted['seed']}; fitted on {fitted['fit_layers']} layers, table on "
          f"{fitted['table_layers']} of {m['layers']}); CPU")
tables.write_html(cells.drop("policy", "metric"), o.html,
                  "Hotness model calibration: published vs modelled, fit / predicted / extrapolation", source)
plots.save(placement_plots.calibration(cells, source), o.fig_svg, o.fig_png, o.fig_html)
