import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start

log = start(snakemake)

from moelab.imports import ImportSpec, read_trace
from moelab.traces import write_trace

spec = ImportSpec.from_config(snakemake.params.entry, f"imports[{snakemake.wildcards.name}]")
meta, table = read_trace(spec, snakemake.params.seed)
write_trace(snakemake.output[0], meta, table)
log.info("%s: %d rows from %s (%s), %d layers x %d experts, top-%d", meta.source_id, table.num_rows, spec.path,
         spec.format, meta.n_moe_layers, meta.num_experts, meta.top_k)
