import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start, write_parquet

log = start(snakemake)

import polars as pl

from moelab import plots, tables
from moelab.routing import plots as rplots
from moelab.routing import significance as rsig
from moelab.routing.spec import StudySpec

i, o = snakemake.input, snakemake.output
frames = {name: pl.concat([pl.read_parquet(f) for f in i[name]])
          for name in ("metrics", "curves", "loads", "preference", "heatmap")}
studies = {name: StudySpec.from_config(raw) for name, raw in snakemake.params.studies.items()}
source = rplots.studies_source(studies)
summary = rplots.study_summary(frames["metrics"])
write_parquet(summary, o.table)
tables.write_html(summary, o.html, "Routing strategies: validation perplexity and routing metrics", source)
sig = rsig.significance(frames["metrics"])
write_parquet(sig, o.significance)
flops = rsig.compute_note(sig, {name: spec.top_k for name, spec in studies.items()})
tables.write_html(sig, o.significance_html, rsig.title(sig), f"{flops} | {source}" if flops else source)
charts = rplots.study_charts(frames, studies)
for name, chart in charts.items():
    plots.save(chart, o[f"{name}_svg"], o[f"{name}_png"], o[f"{name}_html"])
