import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import atomic_path, start

log = start(snakemake)

from moelab.kernels import workloads
from moelab.kernels.from_trace import workloads as cut_workloads
from moelab.traces import read_trace

p = snakemake.params
trace = read_trace(snakemake.input.trace)
cases = cut_workloads(trace, snakemake.wildcards.trace, p.tokens, p.ep_sizes, p.placements, p.split_fraction,
                      p.seed, p.load_slack)
with atomic_path(snakemake.output[0]) as tmp:
    workloads.write(tmp, cases)
for w in cases:
    log.info("%s: %d tokens from layer %d, iterations %d.. (max/mean expert load %.2f)", w.trace, w.tokens,
             w.layer, w.start_iteration, w.loads().max() / w.loads().mean())
