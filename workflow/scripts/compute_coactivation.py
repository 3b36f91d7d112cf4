import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start, write_parquet

log = start(snakemake)

import polars as pl

from moelab import coactivation
from moelab.traces import read_trace

c, o = snakemake.params.coactivation, snakemake.output
trace = read_trace(snakemake.input.trace)
m = trace.meta
groups = c["groups"]
if m.num_experts % groups or m.num_experts // groups < 2:
    raise ValueError(f"coactivation.groups={groups} does not split {m.source_id}'s {m.num_experts} experts "
                     f"into equal groups of at least 2: choose a divisor of {m.num_experts}")
# a captured trace (or its proxy) comes with its corpus: which part, train or heldout, each document is from
corpus = [coactivation.read_doc_parts(p) for p in snakemake.input.corpus]
layers, pairs, dom = coactivation.analyse(trace, groups, snakemake.params.seed, c["null_draws"], c["mi_draws"],
                                          c.get("max_tokens"), c.get("null_tokens"), *corpus)
ident = {"trace": m.source_id, "source_kind": m.source_kind, "num_experts": m.num_experts, "top_k": m.top_k}
for frame, path in ((layers, o.layers), (pairs, o.pairs), (dom, o.domain_expert)):
    write_parquet(frame.with_columns(**{k: pl.lit(v) for k, v in ident.items()}), path)
log.info("split by %s: fit on %d tokens of %d documents, scored on %d tokens of %d documents", layers["split"][0],
         layers["fit_tokens"][0], layers["fit_documents"][0], layers["score_tokens"][0], layers["score_documents"][0])
for r in layers.iter_rows(named=True):
    by_part = ", ".join(f"{p} part {r[f'gain_{p}_part']:.3f}" for p in coactivation.PARTS
                        if r[f"gain_{p}_part"] is not None)
    log.info("layer %d: gain %.3f (null %.3f%s), MI %.3f bits (null %.3f)", r["layer"], r["gain"], r["gain_null"],
             f"; {by_part}" if by_part else "", r["mi_bits"], r["mi_null_mean"])
