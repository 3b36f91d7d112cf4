import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start, torch_threads, write_parquet

log = start(snakemake)

import polars as pl

from moelab.capture import load, load_entry
from moelab.kernels.timing import device_info
from moelab.routing import perft
from moelab.routing.spec import PerftSpec

p, o = snakemake.params, snakemake.output
torch_threads(snakemake.threads)
cfg = PerftSpec.from_config(p.perft)
path = p.path


def fresh():  # noqa: ANN202 - (model, tokenizer); a hub id loads the commit its download record names
    if snakemake.input.hub:
        return load_entry({"name": cfg.model, "path": path, "dtype": "float32"}, "cpu", snakemake.input.hub)
    return load(path)


model, tokenizer = fresh()  # fails fast, naming the checkpoint, before any training
corpus = pl.read_parquet(snakemake.input.corpus)
domain = perft.least_seen_domain(corpus) if cfg.domain == "auto" else cfg.domain
data = perft.domain_tokens(corpus, tokenizer, domain)
log.info("PERFT on %s, task: the %s domain (%d train / %d held-out tokens)", path, domain,
         len(data["train"]), len(data["heldout"]))
tables = perft.run(lambda: fresh()[0].train(), list(cfg.variants), data, cfg, p.seed, domain)
write_parquet(tables["results"].with_columns(model=pl.lit(cfg.model)), o.results)
write_parquet(tables["curves"], o.curves)
info = device_info("cpu")
write_parquet(tables["throughput"].with_columns(device_kind=pl.lit(info["device_kind"]),
                                                device_name=pl.lit(info["device_name"])), o.throughput)
