"""Capacity, token dropping, pack and combine: the part of an MoE layer between the router and the experts.

Conventions (``docs/stages/routing.md``):

- capacity ``C = ceil(CF * T * k / E)`` slots per expert for ``T`` tokens routed to ``k`` experts each;
- slots are handed out first come, first served in *token order*, a token's choices in their column order
  (its strongest first). The MoE layer feeds tokens position-major (every sequence's position 0, then
  position 1, ...), so whether a token keeps its slot never depends on a later position: evaluation is causal;
- ``drop_rate = 1 - kept / (T * k)``; ``token_drop_rate`` = share of tokens with every choice dropped;
- the combine rescales a token's kept weights to the total weight it requested (softk: 1; top-1: its gate
  probability, as in Switch, so the router still learns); a fully dropped token contributes nothing (the
  residual stream carries it).

``slots()`` is numpy and torch agnostic in spirit: the capacity sweep computes drops in numpy (exact, fast),
the layers use the torch version. ``pack``/``combine`` are one ``embedding_bag`` each (no per-expert loop, no
``[T, k, d]`` intermediate); ``pack_loop``/``combine_loop`` are the straightforward per-expert loop that the
benchmark compares against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


def capacity(capacity_factor: float, tokens: int, top_k: int, num_experts: int) -> int:
    """Slots per expert: ``ceil(CF * T * k / E)`` (at least 1)."""
    if capacity_factor <= 0:
        raise ValueError(f"capacity_factor={capacity_factor} must be > 0")
    # round first: CF * T * k / E is often an integer that floating point puts a hair above
    return max(1, math.ceil(round(capacity_factor * tokens * top_k / num_experts, 9)))


def slots_numpy(experts: np.ndarray, num_experts: int) -> np.ndarray:
    """``[T, k]`` expert ids -> each pair's arrival rank at its expert (0 = first), in token order.
    A pair is kept at capacity ``C`` iff its slot is below ``C``; one call serves every CF."""
    flat = np.ascontiguousarray(experts).reshape(-1).astype(np.int64)
    order = np.argsort(flat, kind="stable")
    counts = np.bincount(flat, minlength=num_experts)
    starts = np.cumsum(counts) - counts
    slot = np.empty_like(flat)
    slot[order] = np.arange(flat.size) - starts[flat[order]]
    return slot.reshape(experts.shape)


def drop_metrics(slot: np.ndarray, cap: int) -> dict[str, float]:
    """drop_rate and token_drop_rate of ``[T, k]`` slots at capacity ``cap``."""
    kept = slot < cap
    return {"drop_rate": float(1.0 - kept.mean()), "token_drop_rate": float((~kept.any(axis=1)).mean())}


@dataclass
class Assignment:
    """Where each (token, choice) pair goes. ``slot`` ``[T, k]`` is the arrival rank at its expert; ``keep``
    marks pairs within capacity; ``buffer_index`` = ``expert * C + slot`` for kept pairs and ``E * C`` (a
    zero row) for dropped ones; ``combine_weights`` are the kept weights rescaled as the module doc says."""

    experts: torch.Tensor  # [T, k] long
    slot: torch.Tensor  # [T, k] long
    keep: torch.Tensor  # [T, k] bool
    buffer_index: torch.Tensor  # [T, k] long
    combine_weights: torch.Tensor  # [T, k]
    capacity: int
    num_experts: int

    @property
    def drop_rate(self) -> float:
        return float(1.0 - self.keep.float().mean())

    @property
    def token_drop_rate(self) -> float:
        return float((~self.keep.any(dim=1)).float().mean())

    def kept_loads(self) -> torch.Tensor:
        return torch.bincount(self.experts[self.keep], minlength=self.num_experts)


def rescale_kept(weights: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Kept weights rescaled to the total the token requested; dropped weights 0."""
    kept = weights * keep
    total = weights.sum(dim=1, keepdim=True)
    kept_total = kept.sum(dim=1, keepdim=True)
    scale = torch.where(kept_total > 0, total / kept_total.clamp_min(torch.finfo(weights.dtype).tiny),
                        torch.zeros_like(total))
    return kept * scale


def assign(experts: torch.Tensor, weights: torch.Tensor, num_experts: int, cap: int) -> Assignment:
    """Token-choice dispatch at capacity ``cap`` (vectorised: one stable sort, no per-expert loop)."""
    T, k = experts.shape
    flat = experts.reshape(-1)
    order = torch.argsort(flat, stable=True)
    counts = torch.bincount(flat, minlength=num_experts)
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.empty_like(flat)
    slot[order] = torch.arange(flat.numel(), device=flat.device) - starts[flat[order]]
    slot = slot.view(T, k)
    keep = slot < cap
    buffer_index = torch.where(keep, experts * cap + slot, torch.full_like(slot, num_experts * cap))
    return Assignment(experts, slot, keep, buffer_index, rescale_kept(weights, keep), cap, num_experts)


def assign_chosen(chosen: torch.Tensor, weights: torch.Tensor, num_experts: int, cap: int) -> Assignment:
    """Dispatch for routers that decide their pairs themselves (expert choice): ``chosen`` ``[T, m]`` bool
    over ``m = E`` columns (column = expert); every chosen pair has a slot (the router kept capacity)."""
    T, E = chosen.shape
    experts = torch.arange(E, device=chosen.device).expand(T, E)
    # arrival rank within each expert's column, token order
    slot = torch.cumsum(chosen.long(), dim=0) - 1
    keep = chosen & (slot < cap)
    buffer_index = torch.where(keep, experts * cap + slot, torch.full_like(slot, num_experts * cap))
    return Assignment(experts.contiguous(), slot, keep, buffer_index, weights * keep, cap, num_experts)


def pack(x: torch.Tensor, a: Assignment) -> torch.Tensor:
    """``[T, d]`` tokens -> ``[E, C, d]`` expert buffers (zeros in unused slots).

    One ``embedding_bag`` over the slots: a used slot is a bag of one token row, an unused slot an empty bag
    (zeros). No zero-filled buffer written first, no ``[T, k, d]`` copy of the tokens."""
    T, k = a.buffer_index.shape
    keep = a.keep.reshape(-1)
    pos = a.buffer_index.reshape(-1)[keep]
    tok = torch.arange(T, device=x.device).repeat_interleave(k)[keep]
    used = torch.zeros(a.num_experts * a.capacity, dtype=torch.long, device=x.device)
    used[pos] = 1
    offsets = torch.cumsum(used, 0) - used  # bag s starts after the used slots before it
    buf = F.embedding_bag(tok[torch.argsort(pos)], x, offsets, mode="sum")
    return buf.view(a.num_experts, a.capacity, x.shape[1])


def combine(y: torch.Tensor, a: Assignment) -> torch.Tensor:
    """``[E, C, d]`` expert outputs -> ``[T, d]``: each token a weighted bag of its ``k`` slots
    (``embedding_bag`` with per-sample weights; a dropped pair reads slot 0 with weight 0), without
    materialising ``[T, k, d]``."""
    E, C, d = y.shape
    idx = torch.where(a.keep, a.buffer_index, torch.zeros_like(a.buffer_index))
    return F.embedding_bag(idx, y.reshape(E * C, d), mode="sum",
                           per_sample_weights=a.combine_weights.to(y.dtype))


def pack_loop(x: torch.Tensor, a: Assignment) -> torch.Tensor:
    """The straightforward version: for each expert, find its kept tokens and copy them in."""
    T, d = x.shape
    buf = x.new_zeros(a.num_experts, a.capacity, d)
    for e in range(a.num_experts):
        hit = (a.experts == e) & a.keep
        tok, col = hit.nonzero(as_tuple=True)
        buf[e, a.slot[tok, col]] = x[tok]
    return buf


def combine_loop(y: torch.Tensor, a: Assignment) -> torch.Tensor:
    """The straightforward version: for each expert, add its weighted outputs back to their tokens."""
    out = y.new_zeros(a.experts.shape[0], y.shape[2])
    for e in range(a.num_experts):
        hit = (a.experts == e) & a.keep
        tok, col = hit.nonzero(as_tuple=True)
        out.index_add_(0, tok, y[e, a.slot[tok, col]] * a.combine_weights[tok, col, None].to(y.dtype))
    return out
