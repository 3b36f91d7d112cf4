import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start

log = start(snakemake)

import polars as pl

from moelab import plots
from moelab.placement import plots as placement_plots
from moelab.placement.workload_fit import source_text

table = pl.read_parquet(snakemake.input.table)
o = snakemake.output
for i, (name, model) in enumerate(zip(snakemake.params.workloads, snakemake.input.models)):
    part = table.filter(pl.col("workload") == name)
    chart = placement_plots.workload_predictions(part, name, source_text(part, [model]))
    plots.save(chart, getattr(o, f"w{i}_svg"), getattr(o, f"w{i}_png"), getattr(o, f"w{i}_html"))
    log.info("%s: %d cells drawn", name, part.height)
