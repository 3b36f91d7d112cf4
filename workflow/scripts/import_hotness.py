import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start

log = start(snakemake)

import hashlib
from pathlib import Path

from moelab import load_source
from moelab.imports import ImportSpec, read_hotness

entry = snakemake.params.entry
spec = ImportSpec.from_config(entry, f"imports[{snakemake.wildcards.name}]")
notes: dict = {}
hot = read_hotness(spec, notes)


def sha256(path: str) -> str:
    with open(path, "rb") as fh:  # in chunks: a dump can be larger than memory
        return hashlib.file_digest(fh, "sha256").hexdigest()


files = [{"path": f, "bytes": Path(f).stat().st_size, "sha256": sha256(f)} for f in snakemake.input.files]
meta = {"source_id": spec.source_id, "format": spec.format, "path": spec.path, "files": files,
        "shape": list(hot.shape), "top_k": spec.top_k, "config": dict(entry), "read": notes}
load_source.write_hotness(hot, meta, snakemake.output.hot, snakemake.output.meta)
log.info("%s: hotness %s from %s (%s)", spec.source_id, hot.shape, spec.path, spec.format)
