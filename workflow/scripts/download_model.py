import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import atomic_path, start

log = start(snakemake)

import json

from moelab import hub

p, model = snakemake.params, snakemake.wildcards.model
record = hub.download(p.hub["repo_id"], p.hub["revision"], model=model)
with atomic_path(snakemake.output.record) as tmp, open(tmp, "w") as fh:
    json.dump(record, fh, indent=1)
log.info("%s: %s at commit %s, %d files, %.1f GB in %s", model, record["repo_id"], record["commit"],
         len(record["files"]), record["bytes"] / 1e9, record["snapshot"])
