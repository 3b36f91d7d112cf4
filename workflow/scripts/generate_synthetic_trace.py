import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start

log = start(snakemake)

from moelab.synthetic.scenarios import SyntheticSpec, generate
from moelab.traces import write_trace

spec = SyntheticSpec.from_dict(snakemake.params.spec)
log.info("generating %s", spec.trace_id)
meta, table, stream = generate(spec)
write_trace(snakemake.output.trace, meta, table)
log.info("wrote %d rows (%d iterations x %d tokens x %d layers)", table.num_rows,
         stream.iterations, stream.concurrency, meta.n_moe_layers)
