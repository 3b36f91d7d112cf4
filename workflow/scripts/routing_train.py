import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start, torch_threads, write_parquet

log = start(snakemake)

import polars as pl

from moelab.kernels.timing import device_info
from moelab.devices import resolve_device
from moelab.routing.study import StudySpec, Tokens, run_strategy

p, o = snakemake.params, snakemake.output
torch_threads(snakemake.threads)
spec = StudySpec.from_config(p.train)
tokens = Tokens(pl.read_parquet(snakemake.input.corpus), spec.tokenizer,
                snakemake.input.tokenizer[0] if snakemake.input.tokenizer else None)
study = snakemake.wildcards.study
tables = {name: t.with_columns(study=pl.lit(study))
          for name, t in run_strategy(tokens, spec, snakemake.wildcards.strategy, p.seed).items()}
for name in ("metrics", "curves", "loads", "preference", "heatmap"):
    write_parquet(tables[name], o[name])
info = device_info(resolve_device(spec.device, "routing.train.device"))
write_parquet(tables["throughput"].with_columns(threads=pl.lit(snakemake.threads), device_kind=pl.lit(
    info["device_kind"]), device_name=pl.lit(info["device_name"])), o.throughput)
