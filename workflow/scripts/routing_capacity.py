import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start, torch_threads, write_parquet

log = start(snakemake)

from moelab.kernels.timing import keep_freed_memory
from moelab.routing.capacity_sweep import sweep, throughput
from moelab.routing.spec import CapacitySpec
from moelab.traces import read_trace

p, source = snakemake.params, snakemake.wildcards.source
torch_threads(snakemake.threads)
keep_freed_memory()
trace = read_trace(snakemake.input.trace[0]) if snakemake.input.trace else None
c = CapacitySpec.from_config(p.capacity)
drops, cases = sweep(source, trace, c, p.seed)
write_parquet(drops, snakemake.output.drops)
timed = throughput(cases, c.factors, c.hidden, c.warmup, c.iters, p.seed)
write_parquet(timed, snakemake.output.throughput)
log.info("%s: %d drop rows, %d timed cases", source, drops.height, timed.height)
