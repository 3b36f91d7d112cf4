import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import atomic_dir, start, torch_threads, write_parquet

log = start(snakemake)
torch_threads(snakemake.threads)

from transformers import AutoTokenizer

from moelab import corpus, tiny, windows

o, p = snakemake.output, snakemake.params
spec = tiny.TinySpec.from_config(p.tiny)
tok = AutoTokenizer.from_pretrained(snakemake.input.tokenizer)
frame = corpus.read(snakemake.input.corpus)
train_ids = windows.token_ids(frame, tok, "train")
eval_ids = windows.token_ids(frame, tok, "heldout")
log.info("tokens: %d train, %d held out", train_ids.size, eval_ids.size)
model = tiny.build_model(spec, tok, p.seed)
# Folders written under temporary names and renamed when complete: a killed job leaves no half checkpoint.
with atomic_dir(o.untrained) as tmp:
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
curve = tiny.train(model, train_ids, eval_ids, spec, p.seed, log=log.info)
with atomic_dir(o.trained) as tmp:
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
write_parquet(curve, o.curve)
