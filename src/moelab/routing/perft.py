"""Routed adapters (PERFT, Liu et al. 2024) on a frozen MoE checkpoint (the embedded OLMoE by default).

Each MoE block gets low-rank adapters beside it, reading the block's input: ``out = moe(x) + sum_i w_i(x)
up_i(down_i(x))`` with rank-``r`` ``down``/``up`` (``up`` starts at zero, so training starts from the base):

- ``S`` (PERFT-S): one shared adapter, always active;
- ``D`` (PERFT-D): ``adapters`` always-active adapters (weights 1);
- ``R`` (PERFT-R): ``adapters`` adapter experts with their own linear router, top-``top_k`` of them per
  token (softmax over the selected, as the base router does);
- ``E`` (PERFT-E): one adapter embedded in each frozen expert, weighted by the *base* router's top-k weights
  (it shares the base router, trains none).

The base stays frozen (``requires_grad`` off, bit-identical after training); only adapters and the PERFT-R
router train. The adapters of one block run as two dense matmuls over all ``n * r`` adapter units, with the
per-token weights spread over them: no per-adapter loop.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import polars as pl
import torch
from torch import nn

from moelab.routing.spec import PerftSpec, Variant
from moelab.windows import windows

log = logging.getLogger(__name__)

class Adapters(nn.Module):
    """``n`` rank-``r`` adapters computed together: ``(w [T, n] spread over r units) * (x @ down) @ up``."""

    def __init__(self, dim: int, n: int, rank: int) -> None:
        super().__init__()
        self.n, self.rank = n, rank
        self.down = nn.Parameter(torch.randn(dim, n * rank) / math.sqrt(dim))
        self.up = nn.Parameter(torch.zeros(n * rank, dim))

    def forward(self, x: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
        h = x @ self.down
        if weights is not None:
            h = h * weights.to(h.dtype).repeat_interleave(self.rank, dim=1)
        return h @ self.up


class PerftBlock(nn.Module):
    """A frozen MoE block (``gate`` + ``experts``, the transformers layout) with PERFT adapters beside it."""

    def __init__(self, base: nn.Module, variant: Variant, dim: int) -> None:
        super().__init__()
        self.base, self.variant = base, variant
        v = variant
        n = base.gate.num_experts if v.kind == "E" else v.adapters
        self.adapters = Adapters(dim, n, v.rank)
        if v.kind == "R":
            self.router = nn.Linear(dim, v.adapters, bias=False)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        out = self.base(hidden_states)
        shape = hidden_states.shape
        x = hidden_states.reshape(-1, shape[-1])
        v = self.variant
        if v.kind in ("S", "D"):
            w = None
        elif v.kind == "R":
            top = torch.topk(self.router(x), v.top_k, dim=1)
            w = torch.zeros(x.shape[0], v.adapters, dtype=x.dtype, device=x.device)
            w = w.scatter(1, top.indices, torch.softmax(top.values, dim=1))
        else:
            _, scores, indices = self.base.gate(x)  # the base router's own top-k weights
            w = torch.zeros(x.shape[0], self.adapters.n, dtype=x.dtype, device=x.device)
            w = w.scatter(1, indices, scores.to(x.dtype))
        return out + self.adapters(x, w).reshape(shape)


def attach(model: nn.Module, variant: Variant) -> list[nn.Parameter]:
    """Freeze ``model`` and put PERFT adapters beside every MoE block; returns the trainable parameters."""
    model.requires_grad_(False)
    dim = model.config.hidden_size
    for layer in model.model.layers:
        if hasattr(layer.mlp, "gate") and hasattr(layer.mlp, "experts"):
            layer.mlp = PerftBlock(layer.mlp, variant, dim)
    params = [p for n, p in model.named_parameters() if ".adapters." in n or ".router." in n]
    if not params:
        raise ValueError(f"{type(model).__name__}: no MoE block (gate + experts) found to attach adapters to")
    return params


def base_state(model: nn.Module) -> list[tuple[str, nn.Parameter, torch.Tensor]]:
    """Each base parameter with a copy of its value (call before ``attach``; ``base_changed`` compares)."""
    return [(n, p, p.detach().clone()) for n, p in model.named_parameters()]


def base_changed(state: list[tuple[str, nn.Parameter, torch.Tensor]]) -> list[str]:
    return [n for n, p, copy in state if not torch.equal(p.detach(), copy)]


def domain_tokens(corpus: pl.DataFrame, tokenizer, domain: str) -> dict[str, np.ndarray]:  # noqa: ANN001
    from moelab.windows import token_ids

    sub = corpus.filter(pl.col("domain").cast(pl.String) == domain)
    if sub.is_empty():
        raise ValueError(f"routing.perft.domain={domain!r}: the corpus has no such domain")
    return {"train": token_ids(sub, tokenizer, "train"), "heldout": token_ids(sub, tokenizer, "heldout")}


def least_seen_domain(corpus: pl.DataFrame) -> str:
    """The domain with the fewest training characters: the base model saw it least."""
    per = (corpus.filter(pl.col("part") == "train")
           .group_by(pl.col("domain").cast(pl.String)).agg(chars=pl.col("text").str.len_chars().sum())
           .sort("chars", "domain"))
    return per.get_column("domain")[0]


def evaluate(model, ids: np.ndarray, starts: np.ndarray, batch: int, seq_len: int) -> float:  # noqa: ANN001
    model.eval()
    losses = []
    with torch.no_grad():
        for b in range(0, len(starts), batch):
            x = windows(ids, starts[b:b + batch], seq_len)
            losses.append(float(model(input_ids=x, labels=x).loss))
    model.train()
    return float(np.mean(losses))


def finetune(load_model, variant: Variant | None, data: dict[str, np.ndarray], cfg: PerftSpec,  # noqa: ANN001
             seed: int) -> dict:
    """Fine-tune one variant (None: the frozen base, evaluated only) on ``data``'s train tokens; evaluate
    on fixed held-out windows. ``load_model()`` returns a fresh base model."""
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    model = load_model()
    seq, batch = cfg.seq_len, cfg.batch_size
    for part, ids in data.items():
        if len(ids) <= seq + 1:
            raise ValueError(f"routing.perft: the {part!r} text of the domain has {len(ids)} tokens, fewer than "
                             f"seq_len={seq} + 1")
    eval_starts = np.random.default_rng([seed, 1]).integers(0, len(data["heldout"]) - seq,
                                                            size=cfg.eval_batches * batch)
    base_loss = evaluate(model, data["heldout"], eval_starts, batch, seq)
    curve = [{"step": 0, "train_loss": None, "val_loss": base_loss}]
    if variant is None:
        return {"trainable": 0, "adapters": 0, "active": 0, "val_loss": base_loss, "base_val_loss": base_loss,
                "curve": curve, "tokens_per_s": None}
    before = base_state(model)
    params = attach(model, variant)
    trainable = sum(p.numel() for p in params)
    block = next(m for m in model.modules() if isinstance(m, PerftBlock))
    n_adapters = block.adapters.n
    active = {"S": 1, "D": n_adapters, "R": variant.top_k, "E": block.base.gate.top_k}[variant.kind]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    rng = np.random.default_rng([seed, 0])
    model.train()
    spent = 0.0
    for step in range(cfg.steps):
        x = windows(data["train"], rng.integers(0, len(data["train"]) - seq, size=batch), seq)
        t0 = time.perf_counter()
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        spent += time.perf_counter() - t0
        row = {"step": step + 1, "train_loss": float(loss.detach()), "val_loss": None}
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            row["val_loss"] = evaluate(model, data["heldout"], eval_starts, batch, seq)
        curve.append(row)
    changed = base_changed(before)
    if changed:
        raise RuntimeError(f"PERFT changed base weights: {changed[:3]}")
    return {"trainable": trainable, "adapters": n_adapters, "active": active, "val_loss": curve[-1]["val_loss"], "base_val_loss": base_loss,
            "curve": curve, "tokens_per_s": cfg.steps * batch * seq / max(spent, 1e-9)}


def run(load_model, variants: list[Variant], data: dict[str, np.ndarray], cfg: PerftSpec, seed: int,  # noqa: ANN001
        domain: str, progress=log.info) -> dict[str, pl.DataFrame]:  # noqa: ANN001
    """The frozen base and every variant, each from the same base and the same batches."""
    rows, curves, timing = [], [], []
    for v in [None, *variants]:
        r = finetune(load_model, v, data, cfg, seed)
        key = {"variant": "base (frozen)" if v is None else v.name, "kind": "base" if v is None else v.kind,
               "rank": 0 if v is None else v.rank, "adapters": r["adapters"],
               "active": r["active"]}
        rows.append(key | {"domain": domain, "trainable_params": r["trainable"], "val_loss": r["val_loss"],
                           "base_val_loss": r["base_val_loss"]})
        curves += [key | c for c in r["curve"]]
        timing.append(key | {"tokens_per_s": r["tokens_per_s"]})
        progress(f"{key['variant']}: {r['trainable']:,} trainable, held-out {domain} loss "
                 f"{r['base_val_loss']:.3f} -> {r['val_loss']:.3f}")
    return {"results": pl.DataFrame(rows), "curves": pl.DataFrame(curves, schema_overrides={
        "train_loss": pl.Float64, "val_loss": pl.Float64}),
        "throughput": pl.DataFrame(timing, schema_overrides={"tokens_per_s": pl.Float64})}
