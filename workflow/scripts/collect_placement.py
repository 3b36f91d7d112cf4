import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start, write_parquet

log = start(snakemake)

import polars as pl

from moelab import provenance, tables

i, o, p = snakemake.input, snakemake.output, snakemake.params
static = pl.concat([pl.read_parquet(f) for f in i.static], how="diagonal_relaxed")
cache = pl.concat([pl.read_parquet(f) for f in i.cache], how="diagonal_relaxed")
prefetch = pl.concat([pl.read_parquet(f) for f in i.prefetch], how="diagonal_relaxed")
matched = tables.static_matched(static, p.cv_match)
write_parquet(static, o.static)
write_parquet(matched, o.matched)
write_parquet(cache, o.cache)
write_parquet(prefetch, o.prefetch)
split = f"fitted on the first {p.split_fraction:.0%} of iterations, scored on the rest; mean over layers"
sources = "traces: " + provenance.of_rows(static, "trace", "source_kind", "capture_device")
tables.write_html(tables.static_placement_summary(static), o.static_html, "Static expert placement",
                  f"{split}; {sources}; select_*: {tables.SELECT_NOTE}")
tables.write_html(matched, o.matched_html, "Static placement at matched load CV, chosen on fitted data",
                  f"{split}; {sources}; " + tables.static_matched_note(matched, p.split_fraction, p.cv_match))
tables.write_html(tables.cache_summary(cache), o.cache_html, "Expert cache: demand miss rate",
                  f"{split}; Belady is the offline optimum (a bound, not a policy); coact = LRU plus a "
                  "co-activation prefetcher (top_k experts per request; loads_per_activation counts its prefetches)")
tables.write_html(tables.prefetch_summary(prefetch), o.prefetch_html, "Next-token prefetch hit rate",
                  f"{split}; consecutive tokens of one request; LFU = most frequent, recent = the current token's "
                  "experts then the most frequent, coact = most co-activated with the current token's experts")
