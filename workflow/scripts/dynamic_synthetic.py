import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start, write_parquet

log = start(snakemake)

import polars as pl

from moelab.placement.dynamic_eval import DynamicSpec, HotnessSpec, evaluate
from moelab.synthetic.scenarios import hotness, hotness_spec

p, o = snakemake.params, snakemake.output
seed = int(snakemake.wildcards.seed)
h = HotnessSpec.from_config(p.hot)
hot = hotness(hotness_spec(**h.generator(), reference_tokens=p.reference_tokens, seed=seed))
log.info("hotness %s (iterations x layers x experts), seed %d", hot.shape, seed)
summary, timeline = evaluate(hot, h.on(DynamicSpec.from_config(p.dynamic)))
ident = {"seed": pl.lit(seed), "devices": pl.lit(h.devices)}
write_parquet(summary.with_columns(**ident), o.summary)
write_parquet(timeline.with_columns(**ident), o.timeline)
for row in summary.iter_rows(named=True):
    log.info("%s: PAR %.3f, %d slots moved, score %.1f", row["policy"], row["mean_par"], row["transmit"],
             row["score_vs_eplb"])
