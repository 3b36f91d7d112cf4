import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start, write_parquet

log = start(snakemake)

from pathlib import Path

import polars as pl

from moelab.exports.placements import dynamic_files, static_files

# One job for every placement: each is a few small files, and a job per source would cost more to schedule
# (on a cluster, an sbatch each) than to write. Static: a device per expert; dynamic: a run's redeployments.
i, o = snakemake.input, snakemake.output
frames = []
for kind, paths, folder in (("static", i.static, o.static), ("dynamic", i.dynamic, o.dynamic)):
    write = static_files if kind == "static" else dynamic_files
    Path(folder).mkdir(parents=True, exist_ok=True)
    for path in paths:
        placements = pl.read_parquet(path)
        source = placements["trace"][0]
        manifest = write(placements, Path(folder) / source).with_columns(trace=pl.lit(source))
        frames.append(manifest)
        for r in manifest.iter_rows(named=True):
            log.info("%s %s %s D=%d: %s", kind, source, r["policy"], r["devices"], ", ".join(r["files"]))
write_parquet(pl.concat(frames, how="diagonal_relaxed"), o.manifest)
