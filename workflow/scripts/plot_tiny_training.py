import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start

log = start(snakemake)

import polars as pl

from moelab import plots

o, t = snakemake.output, snakemake.params.tiny
chart = plots.training_curve(pl.read_parquet(snakemake.input.curve),
                             source=f"OlmoeForCausalLM {t['num_experts']} experts top-{t['top_k']}, trained on the "
                                    f"corpus on CPU; loss without the router aux term")
plots.save(chart, o.svg, o.png, o.html)
