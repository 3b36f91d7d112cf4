import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start

log = start(snakemake)

import polars as pl

from moelab import plots
from moelab.routing import plots as rplots
from moelab.routing.spec import StudySpec

i, o = snakemake.input, snakemake.output
studies = {name: StudySpec.from_config(raw) for name, raw in snakemake.params.studies.items()}
capacity = pl.concat([pl.read_parquet(f) for f in i.capacity], how="diagonal_relaxed")
metrics = pl.concat([pl.read_parquet(f) for f in i.metrics])
throughput = pl.concat([pl.read_parquet(f) for f in i.throughput])
charts = {"routing_capacity_throughput": rplots.capacity_throughput(capacity),
          "routing_frontier": rplots.frontier(metrics, throughput, rplots.studies_source(studies))}
for name, chart in charts.items():
    plots.save(chart, o[f"{name}_svg"], o[f"{name}_png"], o[f"{name}_html"])
