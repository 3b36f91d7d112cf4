import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start, write_parquet

log = start(snakemake)

import polars as pl

from moelab import plots, tables
from moelab.placement.dynamic_eval import DynamicSpec, HotnessSpec

i, o = snakemake.input, snakemake.output
h = HotnessSpec.from_config(snakemake.params.hot)
d = h.on(DynamicSpec.from_config(snakemake.params.dynamic))  # the block's own devices and cadence
summary = pl.concat([pl.read_parquet(f) for f in i.summaries])
timeline = pl.concat([pl.read_parquet(f) for f in i.timelines])
write_parquet(summary, o.table)
source = (f"synthetic hotness generated directly (power law alpha {h.alpha:g}, random-walk drift sigma "
          f"{h.walk_sigma:g}; {h.layers} layers x {h.experts} experts, top-{h.top_k}, concurrency "
          f"{h.concurrency}, {h.iterations} iterations; seeds {', '.join(map(str, h.seeds))}); "
          f"{h.devices} devices with {h.redundant_slots} redundant slot(s); DS-EPLB every "
          f"{d.eplb_interval} iterations, moelab every {d.interval}; modelled time = {d.par_weight:g} x PAR "
          f"+ slots x {d.slot_bytes:,} B / {d.bandwidth:.3g} B/s")
tables.write_html(tables.seeds_summary(summary), o.html, "Dynamic placement at serving scale: mean over seeds",
                  source)
plots.save(plots.par_timeline(timeline.rename({"seed": "trace"}).with_columns(
    pl.format("seed {}", pl.col("trace"))), source), o.fig_svg, o.fig_png, o.fig_html)
