import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import atomic_path, start, write_parquet

log = start(snakemake)

import polars as pl

from moelab import plots, provenance
from moelab.kernels import plots as kernel_plots
from moelab.kernels import bench_summary

i, o = snakemake.input, snakemake.output
frames = [pl.read_parquet(f) for f in [*i.runs, *i.jax]]
for f in i.recorded:  # numbers from machines we cannot rerun at will (recorded/<device>/kernels/)
    rec = pl.read_parquet(f)
    frames.append(rec.with_columns(provenance=pl.concat_str([pl.lit("recorded on "), pl.col("device_name"),
                                                             pl.lit(", not regenerated")])))
table = pl.concat(frames, how="diagonal_relaxed")
write_parquet(table, o.table)
rows = table.to_dicts()
with atomic_path(o.csv) as tmp:
    tmp.write_text(bench_summary.to_csv(rows))
title = "MoE kernel benchmark: " + provenance.of_measurements(table)
with atomic_path(o.markdown) as tmp:
    tmp.write_text(bench_summary.to_markdown(rows, title))
with atomic_path(o.summary) as tmp:
    tmp.write_text(bench_summary.to_html(rows, title))
plots.save(kernel_plots.latency(table), o.latency_svg, o.latency_png, o.latency_html)
plots.save(kernel_plots.speedup_heatmap(table), o.speedup_svg, o.speedup_png, o.speedup_html)
plots.save(kernel_plots.roofline(table), o.roofline_svg, o.roofline_png, o.roofline_html)
plots.save(kernel_plots.placement(table), o.placement_svg, o.placement_png, o.placement_html)
alpha = pl.concat([pl.read_parquet(f) for f in i.alpha], how="diagonal_relaxed") if i.alpha else None
plots.save(kernel_plots.alpha_match(alpha), o.alpha_svg, o.alpha_png, o.alpha_html)
log.info("%d measurements (%d recorded)", table.height, table.filter(pl.col("provenance") != "regenerated").height)
