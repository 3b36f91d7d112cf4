import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import atomic_path, start

log = start(snakemake)

import os

p = snakemake.params
if p.jax["platform"] != "auto":  # before jax is imported: the platform the config asks for, nothing else
    os.environ["JAX_PLATFORMS"] = p.jax["platform"]

from moelab.kernels import bench, workloads
from moelab.kernels.jax_backend import JaxBackend
from moelab.kernels.jax_moe import init_distributed
from moelab.kernels.shapes import MoEShape

if init_distributed():
    log.info("jax.distributed initialised from the Slurm environment")
spec = bench.spec_from_params(p.spec, snakemake.wildcards.trace, implementations=p.jax["implementations"])
shapes = [MoEShape(**s) for s in p.shapes]
cases = [w for w in workloads.read(snakemake.input.workload) if w.tokens in p.jax["tokens"]]
backend = JaxBackend(spec, log.info, interpret_max_tokens=p.jax["interpret_max_tokens"],
                     dense_max_elements=p.jax["dense_max_elements"])
rows = bench.run(cases, shapes, spec, progress=log.info, backend=backend)
with atomic_path(snakemake.output[0]) as tmp:
    bench.write_rows(tmp, rows, provenance="regenerated")
log.info("%d measurements", len(rows))
