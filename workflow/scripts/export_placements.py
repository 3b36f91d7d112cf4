import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start, write_parquet

log = start(snakemake)

import polars as pl

from moelab.placement import engine_files

kind = snakemake.params.kind  # "static" (a device per expert) or "dynamic" (a run's redeployments)
placements = pl.read_parquet(snakemake.input.placements)
write = engine_files.static_files if kind == "static" else engine_files.dynamic_files
manifest = write(placements, snakemake.output.folder)
write_parquet(manifest.with_columns(trace=pl.lit(placements["trace"][0])), snakemake.output.manifest)
for r in manifest.iter_rows(named=True):
    log.info("%s %s D=%d: %s", kind, r["policy"], r["devices"], ", ".join(r["files"]))
