import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import atomic_path, start, torch_threads, write_parquet

log = start(snakemake)
torch_threads(snakemake.threads)

import json

import polars as pl

from moelab import capture, corpus
from moelab.devices import resolve_device
from moelab.traces import write_trace

o, p = snakemake.output, snakemake.params
m = p.model
device = resolve_device(p.device, "capture.device")
model, tok = capture.load_entry(m, device, snakemake.input.hub)  # a hub id: the commit its download record names
cap = capture.capture(model, tok, corpus.read(snakemake.input.corpus), source_id=f"captured-{m['name']}",
                      concurrency=p.concurrency, seq_len=m["seq_len"], batch_size=m["batch_size"],
                      seed=p.seed, device=device, dtype=m["dtype"], max_iterations=p.max_iterations,
                      parts=tuple(p.parts), config={"model": m["name"], "path": m["path"]},
                      arrival=m["arrival"], phase_requests=m["phase_requests"])
write_trace(o.trace, cap.meta, cap.table())
write_parquet(pl.DataFrame([capture.summary_row(cap)]), o.summary)
with atomic_path(o.rate) as tmp, open(tmp, "w") as fh:  # a timing: lives under results/bench/
    json.dump({"trace": cap.meta.source_id, "tokens_per_s": cap.tokens_per_s, "device_kind": device.split(":")[0],
               "device_name": capture.device_name(device)}, fh, indent=1)
log.info("%s: %d tokens captured at %.0f tokens/s", cap.meta.source_id, cap.stream.n_tokens, cap.tokens_per_s)
