import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start

log = start(snakemake)

from moelab import corpus

c = corpus.CorpusSpec.from_config(snakemake.params.corpus)
frame = corpus.build(c.domains, max_chars=c.max_chars, doc_chars=c.doc_chars, heldout=c.heldout,
                     seed=snakemake.params.seed, path=c.path, log=log.info)
corpus.write(frame, snakemake.output.corpus)
corpus.write(corpus.summary(frame), snakemake.output.summary)
