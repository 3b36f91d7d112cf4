import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start, write_parquet

log = start(snakemake)

import polars as pl

from moelab import tables

i = snakemake.input
frame = tables.tiny_checkpoint(pl.read_parquet(i.curve), pl.concat([pl.read_parquet(p) for p in i.coactivation]),
                               pl.concat([pl.read_parquet(p) for p in i.stats], how="diagonal_relaxed"))
write_parquet(frame, snakemake.output.table)
t = snakemake.params.tiny
tables.write_html(frame, snakemake.output.html, "Embedded checkpoint vs its untrained control",
                  f"OlmoeForCausalLM, {t['num_experts']} experts top-{t['top_k']}, {t['num_layers']} layers, "
                  f"hidden {t['hidden_size']}, {t['steps']} steps on the corpus (CPU); routing captured on CPU")
