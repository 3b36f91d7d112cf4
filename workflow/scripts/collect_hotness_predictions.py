import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start, write_parquet

log = start(snakemake)

import polars as pl

from moelab import tables
from moelab.placement.workload_fit import error_summary, source_text

i, o = snakemake.input, snakemake.output
table = pl.concat([pl.read_parquet(f) for f in i.tables])
write_parquet(table, o.table)
errors = error_summary(table)
for r in errors.iter_rows(named=True):
    log.info("%s %s: %d cells, |PAR error| median %.1f%%, max %.1f%%; |transmit error| max %.1f%%", r["workload"],
             r["role"], r["cells"], 100 * r["par_median"], 100 * r["par_max"], 100 * (r["transmit_max"] or 0.0))
write_parquet(errors, o.errors)
tables.write_html(table, o.html, "Workload models: modelled vs published, every dataset x EP x policy",
                  source_text(table, list(i.models)))
