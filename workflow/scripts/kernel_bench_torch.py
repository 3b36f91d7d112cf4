import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import atomic_path, start, torch_threads

log = start(snakemake)
torch_threads(snakemake.threads)

from moelab.kernels import bench, workloads
from moelab.kernels.shapes import MoEShape

raw = dict(snakemake.params.spec)
if raw.pop("profile", False):  # profiler traces per case, next to the timings (not a declared output)
    raw["profile_dir"] = f"results/bench/kernels/profiles/{snakemake.wildcards.trace}"
spec = bench.BenchSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})
shapes = [MoEShape(**s) for s in snakemake.params.shapes]
cases = workloads.read(snakemake.input.workload)
rows = bench.run(cases, shapes, spec, progress=log.info)
with atomic_path(snakemake.output[0]) as tmp:
    bench.write_rows(tmp, rows, provenance="regenerated")
log.info("%d measurements", len(rows))
