import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start, write_parquet

log = start(snakemake)

import json

from moelab.jobs import atomic_path
from moelab.placement.calibration import CalibrationSpec, cells_table, fit, params_record

spec = CalibrationSpec.from_config(snakemake.params.calibration)
o = snakemake.output


def progress(n, skew, tokens, drift, residuals) -> None:  # noqa: ANN001
    log.info("fit evaluation %d: skew %.4f, tokens %.1f, drift %.3g; residuals %s", n, skew, tokens, drift,
             ", ".join(f"{r:+.2f}" for r in residuals))


model, record = fit(spec, progress)
log.info("fitted %s (%d calls => trace length in [%d, %d])", model, record["calls"], record["shortest"],
         record["longest"])
cells = cells_table(model, spec)
for row in cells.iter_rows(named=True):
    log.info("%-30s %-13s published %s modelled %.4g", row["cell"], row["role"], row["published"], row["modelled"])
write_parquet(cells, o.cells)
with atomic_path(o.model) as tmp:
    tmp.write_text(json.dumps(params_record(model, record, spec), indent=1, sort_keys=True) + "\n")
