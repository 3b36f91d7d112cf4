import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start, torch_threads, write_parquet

log = start(snakemake)
torch_threads(snakemake.threads)

import polars as pl

from moelab.kernels import alpha_match, workloads
from moelab.kernels.shapes import MoEShape
from moelab.kernels.spec import AlphaSpec

p = snakemake.params
spec = AlphaSpec.from_config(p.alpha)
cases = workloads.read(snakemake.input.workload)
captured = max(cases, key=lambda w: w.tokens)  # prefill-sized: where skew shows in the busiest rank
shape = next(MoEShape(**s) for s in p.shapes if (s["experts"], s["top_k"]) == (captured.num_experts, captured.top_k))
rows = alpha_match.measure(captured, shape, spec.alphas(), p.ep, request_length=p.request_length,
                           reference_tokens=p.reference_tokens, seed=p.seed, rounds=spec.rounds, iters=spec.iters,
                           draws=spec.draws)
found = alpha_match.summarise(rows, alpha_match.mle(captured, p.reference_tokens))
write_parquet(found.with_columns(trace=pl.lit(captured.trace), shape_label=pl.lit(shape.label),
                                 tokens=pl.lit(captured.tokens), layer=pl.lit(captured.layer), ep=pl.lit(p.ep)),
              snakemake.output[0])
r = found.row(0, named=True)
for name in ("latency_matched", "load_matched", "mle"):
    log.info("%s: %s alpha %.3f [%.3f, %.3f]", captured.trace, name,
             *(r[f"{name}_alpha{end}"] for end in ("", "_low", "_high")))
