import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start, torch_threads

log = start(snakemake)
torch_threads(snakemake.threads)

from moelab import capture
from moelab.devices import resolve_device
from moelab.traces import read_trace, write_trace

p = snakemake.params
device = resolve_device(p.device, "capture.device")
model, _ = capture.load_entry(p.model, device, snakemake.input.hub)
meta, table = capture.proxy_trace(read_trace(snakemake.input.trace), model, p.seed,
                                  source_id=f"proxy-{p.model['name']}")
write_trace(snakemake.output.trace, meta, table)
log.info("%s: gaussian-input routing for %d rows", meta.source_id, table.num_rows)
