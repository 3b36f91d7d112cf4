"""The training study: a tiny MoE language model per strategy x capacity factor x seed, on the corpus.

One call of ``run_strategy`` trains every (capacity factor, seed) of one strategy (one Snakemake job per
strategy). Everything it returns is a deterministic function of the config and seed (same threads, torch in
deterministic mode), except ``throughput``: tokens/s, which the rule writes under ``results/bench/``.

Evaluation is causal for every strategy: the model is in eval mode, capacity slots go in position order,
and expert choice routes by its learned per-expert thresholds (``routers.py``). For expert choice the leaky
batch routing (every expert takes its top-C tokens of the evaluation batch, future positions included) is
reported beside it as ``val_ppl_batch``, so the size of the leak is visible.

Metrics on the validation windows, averaged over layers: drop rate and token drop rate, the load CV of the
*requested* (pre-capacity) loads, and the entropy of the full router distribution. Expert preference by token
type (whitespace, punctuation, letters, digits, other) counts each token's strongest requested expert.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
import polars as pl

from moelab.devices import resolve_device
from moelab.routing.spec import StudySpec

log = logging.getLogger(__name__)

TOKEN_TYPES = ("whitespace", "punctuation", "letter", "digit", "other")


class Tokens:
    """Token ids of the corpus parts, and each id's token type. ``bytes``: UTF-8 bytes (vocab 256);
    ``bpe``: the pipeline's byte-level BPE tokenizer (``results/models/tokenizer``)."""

    def __init__(self, corpus: pl.DataFrame, kind: str, tokenizer_dir: str | Path | None = None) -> None:
        self.kind = kind
        texts = {part: corpus.filter(pl.col("part") == part).get_column("text").to_list()
                 for part in ("train", "heldout")}
        for part, t in texts.items():
            if not t:
                raise ValueError(f"the corpus has no {part!r} documents")
        if kind == "bytes":
            self.vocab_size = 256
            sep = b"\x00"
            self.ids = {p: np.frombuffer(sep.join(s.encode() for s in t), dtype=np.uint8).astype(np.int64)
                        for p, t in texts.items()}
            strings = [bytes([i]).decode("latin-1") if i < 128 else "\x80" for i in range(256)]
        else:
            if tokenizer_dir is None:
                raise ValueError("routing.train.tokenizer=bpe needs the pipeline's tokenizer")
            from transformers import AutoTokenizer

            from moelab.windows import SPECIAL

            tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
            eos = tok.convert_tokens_to_ids(SPECIAL)
            self.vocab_size = len(tok)
            self.ids = {}
            for p, t in texts.items():
                out: list[int] = []
                for ids in tok(t, add_special_tokens=False)["input_ids"]:
                    out += ids + [eos]
                self.ids[p] = np.asarray(out, dtype=np.int64)
            strings = [tok.decode([i]) for i in range(self.vocab_size)]
        self.types = np.array([TOKEN_TYPES.index(token_type(s)) for s in strings], dtype=np.int64)


def token_type(s: str) -> str:
    """A token's type by its first non-space character (all-space tokens are whitespace)."""
    if not s or s.isspace():
        return "whitespace"
    c = s.lstrip()[0] if s.strip() else s[0]
    if c.isdigit():
        return "digit"
    if c.isascii() and c.isalpha():
        return "letter"
    if c.isascii() and not c.isalnum():
        return "punctuation"
    return "other"


def _windows(ids: np.ndarray, starts: np.ndarray, length: int, device: str = "cpu"):  # noqa: ANN202
    from moelab.windows import windows

    return windows(ids, starts, length).to(device)


def _lr_factor(step: int, spec: StudySpec) -> float:
    if step < spec.warmup:
        return (step + 1) / spec.warmup
    frac = (step - spec.warmup) / max(1, spec.steps - spec.warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac))


def _eval_starts(ids: np.ndarray, spec: StudySpec, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 1])
    return rng.integers(0, len(ids) - spec.seq_len - 1, size=spec.eval_batches * spec.batch_size)


def evaluate(model, ids: np.ndarray, starts: np.ndarray, spec: StudySpec, cf: float,  # noqa: ANN001
             types: np.ndarray | None = None, batch_eval: bool = False) -> dict:
    """Validation loss and routing metrics (eval mode; ``batch_eval`` switches expert choice to the leaky
    batch routing). With ``types``, also the requested loads and expert-by-token-type counts."""
    import torch

    model.eval()
    for r in model.routers():
        r.batch_eval = batch_eval
    E, L = spec.num_experts, spec.layers
    device = next(model.parameters()).device
    losses, drops, tdrops, cvs, ents = [], [], [], [], []
    loads = np.zeros((L, E), dtype=np.int64)
    prefs = np.zeros((L, len(TOKEN_TYPES), E), dtype=np.int64)
    with torch.no_grad():
        for b in range(spec.eval_batches):
            x = _windows(ids, starts[b * spec.batch_size:(b + 1) * spec.batch_size], spec.seq_len + 1, device)
            _, ce, routed = model.loss(x, cf, 0.0)
            losses.append(float(ce))
            inp_pm = x[:, :-1].t().reshape(-1).cpu().numpy()
            for layer, r in enumerate(routed):
                req = r.requested_loads().cpu().numpy()
                loads[layer] += req
                drops.append(r.drop_rate)
                tdrops.append(r.token_drop_rate)
                cvs.append(float(req.std() / req.mean()))
                ents.append(r.entropy())
                if types is not None:
                    np.add.at(prefs[layer], (types[inp_pm], r.experts[:, 0].cpu().numpy()), 1)
    for r in model.routers():
        r.batch_eval = False
    model.train()
    loss = float(np.mean(losses))
    return {"val_loss": loss, "val_ppl": math.exp(loss), "drop_rate": float(np.mean(drops)),
            "token_drop_rate": float(np.mean(tdrops)), "load_cv": float(np.mean(cvs)),
            "entropy": float(np.mean(ents)), "loads": loads, "prefs": prefs}


def train_one(tokens: Tokens, spec: StudySpec, strategy: str, cf: float, seed: int, eval_seed: int,
              steps: int | None = None) -> dict:
    """Train one model (initialisation, batches and noise from ``seed``) and evaluate it on validation
    windows drawn from ``eval_seed``: the same windows for every strategy and seed, so seed-to-seed spread
    is the training's, not the text's. Returns its curve, final metrics, loads, preferences, heatmap and
    throughput."""
    import torch

    from moelab.routing.model import TinyMoELM

    device = resolve_device(spec.device, "routing.train.device")
    torch.use_deterministic_algorithms(True, warn_only=device != "cpu")  # CUDA: bit-exactness not promised
    steps = spec.steps if steps is None else steps
    model = TinyMoELM(spec.shape(tokens.vocab_size), strategy, arch=spec.arch, seed=seed,
                      bias_rate=spec.bias_rate).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, spec))
    train_ids, val_ids = tokens.ids["train"], tokens.ids["heldout"]
    val_starts = _eval_starts(val_ids, spec, eval_seed)
    rng = np.random.default_rng([seed, 0])
    curve = []
    train_s = 0.0
    for step in range(steps):
        starts = rng.integers(0, len(train_ids) - spec.seq_len - 1, size=spec.batch_size)
        x = _windows(train_ids, starts, spec.seq_len + 1, device)
        t0 = time.perf_counter()
        loss, ce, _ = model.loss(x, cf, spec.aux_loss_coef)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        train_s += time.perf_counter() - t0
        row = {"step": step + 1, "train_loss": float(ce.detach()), "val_loss": None}
        if (step + 1) % spec.eval_every == 0 or step + 1 == steps:
            row["val_loss"] = evaluate(model, val_ids, val_starts, spec, cf)["val_loss"]
        curve.append(row)
    final = evaluate(model, val_ids, val_starts, spec, cf, tokens.types)
    final["val_ppl_batch"] = (evaluate(model, val_ids, val_starts, spec, cf, batch_eval=True)["val_ppl"]
                              if strategy == "expert_choice" else None)
    final["heatmap"] = _heatmap(model, val_ids, val_starts, spec, cf)
    final["curve"] = curve
    final["tokens_per_s"] = steps * spec.batch_size * spec.seq_len / max(train_s, 1e-9)
    return final


def _heatmap(model, ids: np.ndarray, starts: np.ndarray, spec: StudySpec, cf: float) -> np.ndarray:  # noqa: ANN001
    """``[layers, heatmap_tokens, E]`` combine weights of the first validation window's first tokens
    (routed together with the rest of its evaluation batch, so capacity acts as in evaluation)."""
    import torch

    model.eval()
    x = _windows(ids, starts[:spec.batch_size], spec.seq_len + 1, next(model.parameters()).device)[:, :-1]
    B = x.shape[0]
    out = np.zeros((spec.layers, spec.heatmap_tokens, spec.num_experts), dtype=np.float32)
    with torch.no_grad():
        _, routed = model(x, cf)
    for layer, r in enumerate(routed):
        a = r.assignment
        dense = torch.zeros(a.experts.shape[0], spec.num_experts)
        dense.scatter_add_(1, a.experts.cpu(), a.combine_weights.float().cpu())
        # position-major rows: sequence 0's position p is row p * B
        out[layer] = dense[torch.arange(spec.heatmap_tokens) * B].numpy()
    model.train()
    return out


def run_strategy(tokens: Tokens, spec: StudySpec, strategy: str, seed: int, steps: int | None = None,
                 progress=log.info) -> dict[str, pl.DataFrame]:  # noqa: ANN001
    """Every capacity factor x seed of one strategy: tables ``metrics``, ``curves``, ``loads``,
    ``preference``, ``heatmap`` (deterministic) and ``throughput`` (timed)."""
    metrics, curves, loads, prefs, heat, thr = [], [], [], [], [], []
    for cf in spec.capacity_factors:
        for s in range(spec.seeds):
            run_seed = seed + 1000 * s
            t0 = time.perf_counter()
            r = train_one(tokens, spec, strategy, cf, run_seed, seed, steps)
            key = {"strategy": strategy, "capacity_factor": cf, "seed": s}
            metrics.append(key | {k: r[k] for k in ("val_loss", "val_ppl", "val_ppl_batch", "drop_rate",
                                                    "token_drop_rate", "load_cv", "entropy")})
            curves += [key | c for c in r["curve"]]
            for layer in range(spec.layers):
                total = max(1, int(r["loads"][layer].sum()))
                loads += [key | {"layer": layer, "expert": e, "share": float(r["loads"][layer, e] / total)}
                          for e in range(spec.num_experts)]
                for ti, tname in enumerate(TOKEN_TYPES):
                    row = r["prefs"][layer, ti]
                    n = int(row.sum())
                    prefs += [key | {"layer": layer, "token_type": tname, "tokens": n, "expert": e,
                                     "share": float(row[e] / n) if n else 0.0} for e in range(spec.num_experts)]
                if s == 0:
                    h = r["heatmap"][layer]
                    heat += [key | {"layer": layer, "position": p, "expert": e, "weight": float(h[p, e])}
                             for p in range(h.shape[0]) for e in range(h.shape[1])]
            thr.append(key | {"tokens_per_s": r["tokens_per_s"]})
            progress(f"{strategy} CF {cf} seed {s}: val ppl {r['val_ppl']:.3f}, drop {r['drop_rate']:.3f}, "
                     f"load CV {r['load_cv']:.3f}, {r['tokens_per_s']:,.0f} tokens/s "
                     f"({time.perf_counter() - t0:.1f} s)")
    return {"metrics": pl.DataFrame(metrics, schema_overrides={"val_ppl_batch": pl.Float64}),
            "curves": pl.DataFrame(curves, schema_overrides={"val_loss": pl.Float64}),
            "loads": pl.DataFrame(loads), "preference": pl.DataFrame(prefs), "heatmap": pl.DataFrame(heat),
            "throughput": pl.DataFrame(thr)}
