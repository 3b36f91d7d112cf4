"""Capture overhead: the same batched forward passes with and without the router hooks, alternated
in one run (medians; the ratio is printed). Target: capture at most 10% slower than plain forward.

Uses the embedded checkpoint when the pipeline has made it (results/models/tiny), else a random
OLMoE of the same shape. Requests are chunks of the corpus, as in the capture rule.

    .venv/bin/python benchmarks/bench_capture.py [--requests 64] [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(ROOT / "results/models/tiny"))
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    from moelab import capture, corpus, tiny

    torch.set_num_threads(args.threads)
    c = corpus.build(("prose", "code", "legal", "technical"), max_chars=60_000, seed=0)
    if Path(args.model, "config.json").exists():
        model, tok = capture.load(args.model)
        label = args.model
    else:
        tmp = Path(tempfile.mkdtemp())
        import yaml
        from transformers import AutoTokenizer

        spec = tiny.TinySpec.from_config(yaml.safe_load((ROOT / "config/config.yaml").read_text())["tiny"])
        tiny.train_tokenizer(c["text"].to_list(), spec.vocab_size, tmp)
        tok = AutoTokenizer.from_pretrained(tmp)
        model = tiny.build_model(spec, tok, seed=0).eval()
        label = f"random OLMoE, {spec.num_experts} experts top-{spec.top_k} (pipeline checkpoint not built)"
    reqs, _ = capture.make_requests(c, tok, args.seq_len, seed=0)
    ids = [r.ids for r in reqs[:args.requests]]
    layers = capture.moe_layers(model)
    pad = tok.pad_token_id or 0
    plain = lambda: capture.plain_forward_rate(model, ids, batch_size=args.batch_size, device="cpu",  # noqa: E731
                                               pad_id=pad)
    hooked = lambda: capture.run_requests(model, layers, ids, batch_size=args.batch_size,  # noqa: E731
                                          device="cpu", pad_id=pad, progress=False)[2]
    plain(), hooked()  # warm-up
    rp, rh = [], []
    for _ in range(args.repeats):  # alternate, so drift in machine speed hits both alike
        rp.append(plain())
        rh.append(hooked())
    n = sum(len(i) for i in ids)
    print(f"model: {label}; {len(ids)} requests, {n} tokens, batch {args.batch_size}, {args.threads} thread(s)")
    print(f"plain forward : {np.median(rp):10,.0f} tokens/s (median of {args.repeats})")
    print(f"capture       : {np.median(rh):10,.0f} tokens/s")
    print(f"overhead      : {np.median(rp) / np.median(rh) - 1:+.1%} (target <= +10%)")


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"({time.perf_counter() - t0:.0f} s)")
