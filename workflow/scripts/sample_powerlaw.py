import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start, write_parquet

log = start(snakemake)

import numpy as np
import polars as pl

from moelab import plots
from moelab.synthetic import powerlaw

p = snakemake.params
frames = plots.powerlaw_frames(np.random.default_rng(p.seed), p.alphas, p.n, p.reference_tokens,
                               max(p.num_experts))
for name in ("samples", "curves", "ranks"):
    write_parquet(frames[name], snakemake.output[name])
rows = []
for E in p.num_experts:
    for a in [a for a in p.alphas if a > 0]:
        for ref in p.sweep:
            mean, sd = powerlaw.expected_top_share(np.random.default_rng(p.seed), a, E, ref, 0.2, p.draws)
            rows.append({"num_experts": E, "alpha": a, "reference_tokens": ref,
                         "top20_expected": mean, "top20_sd": sd})
write_parquet(pl.DataFrame(rows), snakemake.output.sweep)
log.info("sampled %d values per alpha for %s", p.n, p.alphas)
