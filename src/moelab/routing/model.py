"""A tiny MoE language model whose MoE layers take any router of ``routers.py`` (the training study's model).

Pre-norm decoder blocks: causal self-attention, then an MoE feed-forward (route, pack into ``[E, C, d]``
buffers, two batched matmuls with GELU, combine). Tokens enter the MoE layers position-major (all sequences'
position 0 first), so capacity is handed out in position order and no token's routing depends on a later
position (``dispatch.py``).
"""

from __future__ import annotations

import math
import torch
import torch.nn.functional as F
from torch import nn

from moelab.model_shape import ModelShape
from moelab.routing.dispatch import combine, pack
from moelab.routing.names import LEARNED_TOKEN_CHOICE
from moelab.routing.routers import Routed, Router


class MoEFeedForward(nn.Module):
    def __init__(self, spec: ModelShape, strategy: str, arch: str, seed: int, bias_rate: float) -> None:
        super().__init__()
        E = spec.num_experts
        self.router = Router(spec.dim, E, spec.top_k, strategy, arch, vocab_size=spec.vocab_size,
                             seed=seed, bias_rate=bias_rate)
        self.w_in = nn.Parameter(torch.randn(E, spec.dim, spec.ffn) / math.sqrt(spec.dim))
        self.w_out = nn.Parameter(torch.randn(E, spec.ffn, spec.dim) / math.sqrt(spec.ffn))

    def forward(self, x: torch.Tensor, capacity_factor: float, token_ids: torch.Tensor,
                positions: torch.Tensor) -> tuple[torch.Tensor, Routed]:
        routed = self.router(x, capacity_factor, token_ids=token_ids, positions=positions)
        buf = pack(x, routed.assignment)
        y = torch.bmm(F.gelu(torch.bmm(buf, self.w_in)), self.w_out)
        return combine(y, routed.assignment), routed


class Block(nn.Module):
    def __init__(self, spec: ModelShape, strategy: str, arch: str, seed: int, bias_rate: float) -> None:
        super().__init__()
        self.heads = spec.heads
        self.norm1 = nn.LayerNorm(spec.dim)
        self.qkv = nn.Linear(spec.dim, 3 * spec.dim, bias=False)
        self.proj = nn.Linear(spec.dim, spec.dim, bias=False)
        self.norm2 = nn.LayerNorm(spec.dim)
        self.moe = MoEFeedForward(spec, strategy, arch, seed, bias_rate)

    def forward(self, x: torch.Tensor, capacity_factor: float, ids_pm: torch.Tensor,
                pos_pm: torch.Tensor) -> tuple[torch.Tensor, Routed]:
        B, S, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(B, S, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(att.transpose(1, 2).reshape(B, S, d))
        h = self.norm2(x).transpose(0, 1).reshape(S * B, d)  # position-major
        out, routed = self.moe(h, capacity_factor, ids_pm, pos_pm)
        return x + out.view(S, B, d).transpose(0, 1), routed


class TinyMoELM(nn.Module):
    def __init__(self, spec: ModelShape, strategy: str, *, arch: str = "linear", seed: int,
                 bias_rate: float = 1e-3) -> None:
        super().__init__()
        torch.manual_seed(int(seed))
        self.spec, self.strategy = spec, strategy
        self.embed = nn.Embedding(spec.vocab_size, spec.dim)
        self.pos = nn.Embedding(spec.seq_len, spec.dim)
        self.blocks = nn.ModuleList(Block(spec, strategy, arch, seed + i, bias_rate) for i in range(spec.layers))
        self.norm = nn.LayerNorm(spec.dim)
        self.head = nn.Linear(spec.dim, spec.vocab_size, bias=False)

    def routers(self) -> list[Router]:
        return [b.moe.router for b in self.blocks]

    def forward(self, ids: torch.Tensor, capacity_factor: float) -> tuple[torch.Tensor, list[Routed]]:
        """``ids [B, S]`` -> logits ``[B, S, V]`` and each layer's routing (tokens position-major)."""
        B, S = ids.shape
        if S > self.spec.seq_len:
            raise ValueError(f"sequence of {S} tokens exceeds seq_len={self.spec.seq_len}")
        positions = torch.arange(S, device=ids.device)
        x = self.embed(ids) + self.pos(positions)
        ids_pm = ids.t().reshape(-1)
        pos_pm = positions.repeat_interleave(B)
        routed = []
        for block in self.blocks:
            x, r = block(x, capacity_factor, ids_pm, pos_pm)
            routed.append(r)
        return self.head(self.norm(x)), routed

    def loss(self, ids: torch.Tensor, capacity_factor: float,
             aux_coef: float) -> tuple[torch.Tensor, torch.Tensor, list[Routed]]:
        """Next-token cross-entropy and the balancing loss (summed over layers, learned token-choice
        routers only; ``aux_coef`` scales it into the total)."""
        logits, routed = self(ids[:, :-1], capacity_factor)
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        aux = sum((r.aux_loss for r in routed), ce.new_zeros(()))
        if self.strategy not in LEARNED_TOKEN_CHOICE:
            aux = aux.detach()
        return ce + aux_coef * aux, ce, routed
