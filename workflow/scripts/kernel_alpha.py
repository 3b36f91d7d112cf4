import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start, torch_threads, write_parquet

log = start(snakemake)
torch_threads(snakemake.threads)

import polars as pl

from moelab.kernels import alpha_match, workloads
from moelab.kernels.shapes import MoEShape

p = snakemake.params
cases = workloads.read(snakemake.input.workload)
captured = max(cases, key=lambda w: w.tokens)  # prefill-sized: where skew shows in the busiest rank
shape = next(MoEShape(**s) for s in p.shapes if (s["experts"], s["top_k"]) == (captured.num_experts, captured.top_k))
layers = pl.read_parquet(snakemake.input.layers)
mle = float(layers.filter(pl.col("layer") == captured.layer)["alpha_mle"][0])
rows = alpha_match.measure(captured, shape, p.alpha["alphas"], p.ep, request_length=p.request_length,
                           reference_tokens=p.reference_tokens, seed=p.seed, rounds=p.alpha["rounds"],
                           iters=p.alpha["iters"], draws=p.alpha["draws"])
found = alpha_match.summarise(rows, mle)
write_parquet(rows.with_columns(trace=pl.lit(captured.trace), shape_label=pl.lit(shape.label),
                                tokens=pl.lit(captured.tokens), layer=pl.lit(captured.layer), ep=pl.lit(p.ep),
                                **{k: pl.lit(v) for k, v in found.items()}), snakemake.output[0])
log.info("%s: latency-matched alpha %.3f, load-matched %.3f, maximum-likelihood %.3f", captured.trace,
         found["latency_matched_alpha"], found["load_matched_alpha"], mle)
