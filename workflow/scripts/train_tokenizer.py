import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import atomic_dir, start

log = start(snakemake)

import polars as pl

from moelab import corpus, tiny

frame = corpus.read(snakemake.input.corpus).filter(pl.col("part") == "train")
with atomic_dir(snakemake.output[0]) as tmp:
    tiny.train_tokenizer(frame.get_column("text").to_list(), snakemake.params.vocab_size, tmp)
log.info("byte-level BPE, vocab %d, trained on %d documents", snakemake.params.vocab_size, frame.height)
