import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import atomic_path, start, torch_threads

log = start(snakemake)
torch_threads(snakemake.threads)

from moelab.kernels import bench, workloads
from moelab.kernels.shapes import MoEShape

spec = bench.spec_from_params(snakemake.params.spec, snakemake.wildcards.trace)
shapes = [MoEShape(**s) for s in snakemake.params.shapes]
cases = workloads.read(snakemake.input.workload)
rows = bench.run(cases, shapes, spec, progress=log.info)
with atomic_path(snakemake.output[0]) as tmp:
    bench.write_rows(tmp, rows, provenance="regenerated")
log.info("%d measurements", len(rows))
