import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start, write_parquet

log = start(snakemake)

import polars as pl

from moelab.placement import dynamic_eval
from moelab.synthetic.scenarios import hotness, hotness_spec

p, o = snakemake.params, snakemake.output
seed = int(snakemake.wildcards.seed)
h = p.hot
hot = hotness(hotness_spec(h, p.reference_tokens, seed))
log.info("hotness %s (iterations x layers x experts), seed %d", hot.shape, seed)
own = ("devices", "redundant_slots", "nodes", "expert_groups", "interval", "window", "halflife")
d = {**p.dynamic, **{k: h[k] for k in own if k in h}}
summary, timeline = dynamic_eval.evaluate(hot, d)
ident = {"seed": pl.lit(seed), "devices": pl.lit(h["devices"])}
write_parquet(summary.with_columns(**ident), o.summary)
write_parquet(timeline.with_columns(**ident), o.timeline)
for row in summary.iter_rows(named=True):
    log.info("%s: PAR %.3f, %d slots moved, score %.1f", row["policy"], row["mean_par"], row["transmit"],
             row["score_vs_eplb"])
