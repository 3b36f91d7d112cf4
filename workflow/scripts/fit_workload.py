import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start

log = start(snakemake)

import json

from moelab.jobs import atomic_path
from moelab.placement.workload_fit import WorkloadsSpec, fit, model_record, read_model

spec = WorkloadsSpec.from_config(snakemake.params.workloads)
name = snakemake.wildcards.workload
cells = spec.check_published()[name]
base = read_model(snakemake.input.base) if snakemake.input.base else None


def progress(n, params, objective) -> None:  # noqa: ANN001
    log.info("%s fit evaluation %d/%d: %s; objective %.2f", name, n, spec.max_evaluations,
             ", ".join(f"{k} {v:.4g}" for k, v in params.items()), objective)


model, record = fit(spec, name, cells, base, progress)
log.info("%s fitted: %s (objective %.2f -> %.2f over %d residuals)", name, model, record["objective_start"],
         record["objective"], record["residuals"])
with atomic_path(snakemake.output.model) as tmp:
    tmp.write_text(json.dumps(model_record(name, model, record, spec), indent=1, sort_keys=True) + "\n")
