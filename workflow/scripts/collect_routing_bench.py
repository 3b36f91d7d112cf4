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
for svg in o.figures:
    name = svg.rsplit("/", 1)[1].removesuffix(".svg")
    plots.save(charts[name], svg, svg.removesuffix(".svg") + ".png", svg.removesuffix(".svg") + ".html")
