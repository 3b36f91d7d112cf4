"""Hotness: per-iteration expert loads ``[iterations, layers, experts]`` (token counts, zeros kept)."""

from __future__ import annotations

import numpy as np

from moelab.traces import Trace


def from_trace(trace: Trace) -> np.ndarray:
    """``[I, L, E]`` int64 counts of routed tokens per iteration, layer and expert."""
    m = trace.meta
    I, L, E, k, C = trace.n_iterations, m.n_moe_layers, m.num_experts, m.top_k, m.concurrency
    ex = trace.experts_by_layer()  # [T, L, k]; T = I*C tokens in stream order
    # flat bin = (iteration * L + layer) * E + expert; iteration = t // C is the row block
    base = (np.arange(I, dtype=np.int64).repeat(C)[:, None] * L + np.arange(L)) * E
    bins = (base[:, :, None] + ex).ravel()
    return np.bincount(bins, minlength=I * L * E).reshape(I, L, E)
