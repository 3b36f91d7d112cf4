import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start, write_parquet

log = start(snakemake)

import polars as pl

from moelab import provenance, tables

frame = pl.concat([pl.read_parquet(p) for p in snakemake.input.layers], how="diagonal_relaxed")
frame = frame.sort("trace", "layer")
write_parquet(frame, snakemake.output.table)
tables.write_html(tables.load_summary(frame), snakemake.output.html,
                  title="Load statistics per trace (mean over layers)",
                  provenance=f"Sources: {provenance.of_rows(frame)}. One row per source, statistics averaged "
                             f"over its MoE layers (per-layer values: load_stats.parquet); an imported load has no "
                             f"fixed tokens per iteration, so its saturation columns are empty.")
log.info("%d layer rows from %d traces", frame.height, len(snakemake.input.layers))
