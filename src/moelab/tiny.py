"""The embedded checkpoint: a byte-level BPE tokenizer and a small OLMoE trained on the corpus.

Both are saved the way real checkpoints are (``save_pretrained``), so capture loads them through
``AutoModelForCausalLM`` / ``AutoTokenizer`` exactly like a hub model. The untrained
initialisation is saved beside the trained model: it is the control for "what training added"
(a randomly initialised router already has structure).

Reproducibility: the seed and the thread count come from the config; the training windows are
drawn from a seeded generator; torch runs in deterministic mode.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl

from moelab.model_shape import ModelShape, check_schedule
from moelab.spec import ConfigSpec
from moelab.windows import SPECIAL, windows


@dataclass(frozen=True)
class TinySpec(ConfigSpec):
    """Config block ``tiny``: shape and training schedule of the tiny OLMoE. No defaults here: the config
    (``config/config.yaml``) is the one place they are written."""

    key = "tiny"
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_experts: int
    top_k: int
    router_aux_loss_coef: float
    seq_len: int
    batch_size: int
    steps: int
    lr: float
    warmup: int
    eval_every: int
    eval_batches: int

    def __post_init__(self) -> None:
        self.shape  # noqa: B018 - builds the shape, which checks it
        check_schedule(self.steps, self.warmup, "tiny.")

    @property
    def shape(self) -> ModelShape:
        return ModelShape(self.vocab_size, self.hidden_size, self.intermediate_size, self.num_layers, self.num_heads,
                          self.num_experts, self.top_k, self.seq_len, keys=_TINY_KEYS)


_TINY_KEYS = tuple((f, f"tiny.{k}") for f, k in (
    ("vocab_size", "vocab_size"), ("dim", "hidden_size"), ("ffn", "intermediate_size"), ("layers", "num_layers"),
    ("heads", "num_heads"), ("num_experts", "num_experts"), ("top_k", "top_k"), ("seq_len", "seq_len")))


def train_tokenizer(texts: list[str], vocab_size: int, out_dir: str | Path) -> None:
    """Train a byte-level BPE tokenizer and save it as a transformers fast tokenizer."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2, show_progress=False,
                            special_tokens=[SPECIAL])
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token=SPECIAL,
                                  eos_token=SPECIAL, pad_token=SPECIAL, unk_token=SPECIAL)
    tok.model_max_length = 1 << 20  # the model's own position limit applies, not the tokenizer's
    tok.save_pretrained(str(out_dir))


def build_model(spec: TinySpec, tokenizer, seed: int):  # noqa: ANN001, ANN201 - transformers types
    """A freshly initialised ``OlmoeForCausalLM`` of the given shape (deterministic in ``seed``)."""
    import torch
    from transformers import OlmoeConfig, OlmoeForCausalLM

    special = tokenizer.convert_tokens_to_ids(SPECIAL)
    cfg = OlmoeConfig(
        vocab_size=len(tokenizer), hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size, num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads, num_key_value_heads=spec.num_heads,
        num_experts=spec.num_experts, num_experts_per_tok=spec.top_k,
        router_aux_loss_coef=spec.router_aux_loss_coef, output_router_logits=False,
        max_position_embeddings=max(256, spec.seq_len), tie_word_embeddings=False,
        pad_token_id=special, bos_token_id=special, eos_token_id=special,
        experts_implementation="grouped_mm")  # far faster than batched_mm on CPU
    torch.manual_seed(seed)
    return OlmoeForCausalLM(cfg)


def evaluate(model, ids: np.ndarray, spec: TinySpec, seed: int) -> float:  # noqa: ANN001
    """Mean next-token loss on ``eval_batches`` fixed (seeded) windows of ``ids``."""
    import torch

    rng = np.random.default_rng([seed, 1])
    n = spec.eval_batches * spec.batch_size
    starts = rng.integers(0, len(ids) - spec.seq_len, size=n)
    model.eval()
    losses = []
    with torch.no_grad():
        for b in range(spec.eval_batches):
            x = windows(ids, starts[b * spec.batch_size:(b + 1) * spec.batch_size], spec.seq_len)
            losses.append(float(model(input_ids=x, labels=x).loss))
    model.train()
    return float(np.mean(losses))


def train(model, train_ids: np.ndarray, eval_ids: np.ndarray, spec: TinySpec, seed: int,
          log: Callable[[str], None] = print) -> pl.DataFrame:  # noqa: ANN001
    """Train in place with AdamW (linear warm-up, cosine decay) on seeded random windows; the
    loss includes OLMoE's router auxiliary loss. Returns the loss curve (one row per step;
    ``eval_loss`` every ``eval_every`` steps and at the end)."""
    import torch

    torch.use_deterministic_algorithms(True)
    model.config.output_router_logits = True  # makes the model add its aux loss to .loss
    rng = np.random.default_rng([seed, 0])
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=0.01)

    def lr_at(step: int) -> float:
        if step < spec.warmup:
            return (step + 1) / spec.warmup
        frac = (step - spec.warmup) / max(1, spec.steps - spec.warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    # Step 0 is the untrained initialisation: the control's held-out loss.
    rows = [{"step": 0, "loss": None, "aux_loss": None, "eval_loss": evaluate(model, eval_ids, spec, seed)}]
    t0 = time.perf_counter()
    model.train()
    for step in range(spec.steps):
        starts = rng.integers(0, len(train_ids) - spec.seq_len, size=spec.batch_size)
        x = windows(train_ids, starts, spec.seq_len)
        out = model(input_ids=x, labels=x)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        aux = float(out.aux_loss.detach())
        row = {"step": step + 1, "loss": float(out.loss.detach()) - spec.router_aux_loss_coef * aux,
               "aux_loss": aux, "eval_loss": None}
        if (step + 1) % spec.eval_every == 0 or step + 1 == spec.steps:
            row["eval_loss"] = evaluate(model, eval_ids, spec, seed)
            rate = (step + 1) * spec.batch_size * spec.seq_len / (time.perf_counter() - t0)
            log(f"step {step + 1}/{spec.steps}: loss {row['loss']:.3f} aux {aux:.3f} "
                f"eval {row['eval_loss']:.3f} ({rate:,.0f} tokens/s)")
        rows.append(row)
    model.config.output_router_logits = False
    return pl.DataFrame(rows, schema={"step": pl.Int32, "loss": pl.Float64, "aux_loss": pl.Float64,
                                      "eval_loss": pl.Float64})


def spec_dict(spec: TinySpec) -> dict:
    return asdict(spec)
