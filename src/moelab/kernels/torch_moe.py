"""MoE layer forward passes in PyTorch, all with one interface::

    impl(x [T, H], ids [T, k] (local expert ids, -1 = not on this rank), weights [T, k], w) -> [T, H]

- ``loop``: one matmul pair per expert over its tokens (the reference every other one is checked against);
- ``grouped``: sort the (token, expert) pairs by expert, two ``torch._grouped_mm`` calls over the groups;
- ``capacity``: each expert keeps at most ``ceil(cf * pairs / experts)`` pairs (first come, in token
  order), padded into ``[E, C, H]`` for two batched matmuls; dropped pairs contribute nothing (the combine
  does not renormalise: a kernel-level view of what drops cost) and are counted.

Routed experts only: a shared expert is one dense MLP, the same in every implementation."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class ExpertWeights:
    gate_up: torch.Tensor  # [E, H, 2F]: gate columns first, then up
    down: torch.Tensor  # [E, F, H]
    activation: str = "silu"

    @property
    def experts(self) -> int:
        return self.gate_up.shape[0]


def make_weights(experts: int, hidden: int, ffn: int, activation: str, *, dtype: torch.dtype,
                 device: str | torch.device, seed: int) -> ExpertWeights:
    """Seeded weights at the usual ``1/sqrt(fan_in)`` scale (outputs stay O(1), so errors are comparable)."""
    g = torch.Generator().manual_seed(int(seed))
    gate_up = torch.randn(experts, hidden, 2 * ffn, generator=g) / math.sqrt(hidden)
    down = torch.randn(experts, ffn, hidden, generator=g) / math.sqrt(ffn)
    return ExpertWeights(gate_up.to(device=device, dtype=dtype), down.to(device=device, dtype=dtype), activation)


def act_and_mul(h: torch.Tensor, activation: str) -> torch.Tensor:
    """Gated activation of ``h [..., 2F]`` (gate | up) -> ``[..., F]``."""
    gate, up = h.chunk(2, dim=-1)
    if activation == "silu":
        return F.silu(gate) * up
    if activation == "gelu":
        return F.gelu(gate, approximate="tanh") * up
    if activation == "swigluoai":  # gpt-oss: clamped gate and up, sigmoid(1.702 x) gate, (up + 1)
        gate = gate.clamp(max=7.0)
        up = up.clamp(-7.0, 7.0)
        return gate * torch.sigmoid(1.702 * gate) * (up + 1)
    raise ValueError(f"activation {activation!r}: expected silu, gelu or swigluoai")


def _pairs(ids: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Flat valid (token, expert, weight) pairs, in token order."""
    k = ids.shape[1]
    flat = ids.reshape(-1)
    keep = flat >= 0
    token = torch.arange(flat.numel(), device=ids.device) // k
    return token[keep], flat[keep], weights.reshape(-1)[keep]


def moe_loop(x: torch.Tensor, ids: torch.Tensor, weights: torch.Tensor, w: ExpertWeights) -> torch.Tensor:
    out = torch.zeros_like(x)
    token, expert, wt = _pairs(ids, weights)
    for e in range(w.experts):
        sel = expert == e
        if not bool(sel.any()):
            continue
        t = token[sel]
        h = act_and_mul(x[t] @ w.gate_up[e], w.activation) @ w.down[e]
        out.index_add_(0, t, h * wt[sel, None].to(h.dtype))
    return out


def group_offsets(expert: torch.Tensor, experts: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Stable sort of pair expert ids; int32 end offsets of each expert's group (``_grouped_mm``'s ``offs``)."""
    order = torch.sort(expert, stable=True).indices
    counts = torch.bincount(expert, minlength=experts)
    return order, torch.cumsum(counts, 0).to(torch.int32)


def sorted_slots(ids: torch.Tensor, experts: int, compact: bool
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The (token, expert) slots sorted by expert (stable): their flat indices ``token * k + j``, int32 end
    offsets of each expert's group (``_grouped_mm``'s ``offs``) and which sorted slots are real.

    ``compact`` drops the non-local slots (-1) first, a size that depends on the data: right on a CPU. On a
    GPU every slot is kept, the non-local ones sorted last and flagged (``valid``), so no shape depends on
    the data, nothing waits for the host, and the whole layer can be captured in a CUDA graph."""
    flat = ids.reshape(-1)
    if compact:
        slot = (flat >= 0).nonzero().squeeze(1)
        e_sorted, o = torch.sort(flat[slot], stable=True)
        order, valid = slot[o], None
    else:
        e_sorted, order = torch.sort(torch.where(flat >= 0, flat, experts), stable=True)
        valid = e_sorted < experts
    bounds = torch.arange(1, experts + 1, device=ids.device, dtype=e_sorted.dtype)
    return order, torch.searchsorted(e_sorted, bounds).to(torch.int32), valid


def scatter_rows(x: torch.Tensor, token: torch.Tensor, h: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """``out[t] = sum of the rows of h that belong to token t`` (rows already carry their combine weight)."""
    if valid is not None:  # rows past the last group were never computed: select, never multiply, them away
        h = torch.where(valid[:, None], h, 0)
    return torch.zeros_like(x).index_add_(0, token, h)


def moe_grouped(x: torch.Tensor, ids: torch.Tensor, weights: torch.Tensor, w: ExpertWeights) -> torch.Tensor:
    order, offs, valid = sorted_slots(ids, w.experts, compact=not x.is_cuda)
    token = order // ids.shape[1]
    h = torch._grouped_mm(x.index_select(0, token), w.gate_up, offs=offs)
    # the combine weight goes in before the down projection: ffn-wide rows, cheaper than hidden-wide ones
    h = act_and_mul(h, w.activation) * weights.reshape(-1)[order, None].to(h.dtype)
    return scatter_rows(x, token, torch._grouped_mm(h, w.down, offs=offs), valid)


def capacity(pairs: int, experts: int, factor: float) -> int:
    return max(1, math.ceil(factor * pairs / experts))


def capacity_keep(expert: torch.Tensor, experts: int, cap: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For pairs in token order: the sort order by expert, each sorted pair's slot in its expert, and
    which sorted pairs fit (slot < cap): first come, first kept."""
    order, offs = group_offsets(expert, experts)
    e_sorted = expert[order]
    starts = offs.to(torch.int64) - torch.bincount(expert, minlength=experts)
    slot = torch.arange(order.numel(), device=expert.device) - starts[e_sorted]
    return order, slot, slot < cap


def moe_capacity(x: torch.Tensor, ids: torch.Tensor, weights: torch.Tensor, w: ExpertWeights,
                 factor: float = 1.25) -> tuple[torch.Tensor, int]:
    """Padded batched matmul with capacity ``ceil(factor * pairs / E)``; returns (output, dropped pairs)."""
    token, expert, wt = _pairs(ids, weights)
    E = w.experts
    cap = capacity(token.numel(), E, factor)
    order, slot, keep = capacity_keep(expert, E, cap)
    o = order[keep]
    e, s, t = expert[o], slot[keep], token[o]
    buf = x.new_zeros(E, cap, x.shape[1])
    buf[e, s] = x[t]
    h = torch.bmm(act_and_mul(torch.bmm(buf, w.gate_up), w.activation), w.down)
    out = torch.zeros_like(x)
    out.index_add_(0, t, h[e, s] * wt[o, None].to(h.dtype))
    return out, int((~keep).sum())
