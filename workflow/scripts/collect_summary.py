import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start, write_parquet

log = start(snakemake)

import polars as pl

from moelab import summary_page, tables

i, o, p = snakemake.input, snakemake.output, snakemake.params
frame = summary_page.build({name: pl.read_parquet(i[name]) for name in p.tables}, p.command)
write_parquet(frame, o.table)
tables.write_html(frame, o.html, "Headline results",
                  "the panels: each stage's first row; below, every row, read from the table named in `table` of "
                  "this run; `regenerate` rebuilds it (add the --configfile options of this run); workloads as "
                  "named: synthetic (CPU-generated), captured, proxy, imported or a workload model",
                  before=summary_page.panels_html(frame))
log.info("summary: %d headline rows from %s", frame.height, ", ".join(p.tables))
