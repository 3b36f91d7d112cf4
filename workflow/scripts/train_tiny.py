import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start, torch_threads

log = start(snakemake)
torch_threads(snakemake.threads)

import shutil

from transformers import AutoTokenizer

from moelab import corpus, tiny

o, p = snakemake.output, snakemake.params
spec = tiny.TinySpec(**p.tiny)
tok = AutoTokenizer.from_pretrained(snakemake.input.tokenizer)
frame = corpus.read(snakemake.input.corpus)
train_ids = tiny.token_ids(frame, tok, "train")
eval_ids = tiny.token_ids(frame, tok, "heldout")
log.info("tokens: %d train, %d held out", train_ids.size, eval_ids.size)
model = tiny.build_model(spec, tok, p.seed)
# Written to temporary folders and renamed at the end: a killed job leaves no half checkpoint.
tmp_u, tmp_t = o.untrained + ".tmp", o.trained + ".tmp"
for d in (tmp_u, tmp_t):
    shutil.rmtree(d, ignore_errors=True)
model.save_pretrained(tmp_u)
tok.save_pretrained(tmp_u)
curve = tiny.train(model, train_ids, eval_ids, spec, p.seed, log=log.info)
model.save_pretrained(tmp_t)
tok.save_pretrained(tmp_t)
curve.write_parquet(o.curve)
shutil.move(tmp_u, o.untrained)
shutil.move(tmp_t, o.trained)
