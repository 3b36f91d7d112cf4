import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start, write_parquet

log = start(snakemake)

from moelab.placement.workload_fit import WorkloadsSpec, predictions, read_model

spec = WorkloadsSpec.from_config(snakemake.params.workloads)
name = snakemake.wildcards.workload
table = predictions(name, read_model(snakemake.input.model), spec.check_published()[name], spec,
                    progress=lambda seed: log.info("%s: seed %d done", name, seed))
for r in table.iter_rows(named=True):
    log.info("%s EP%d %-12s %-9s modelled PAR %.4f (sd %.4f) published %s; transmit %.0f published %s", name,
             r["ep"], r["policy"], r["role"], r["modelled_par"], r["modelled_par_std"] or 0.0, r["published_par"],
             r["modelled_transmit"], r["published_transmit"])
write_parquet(table, snakemake.output.table)
