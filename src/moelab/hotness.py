"""Hotness: per-iteration expert loads ``[iterations, layers, experts]`` (token counts, zeros kept).

From a trace (:func:`from_trace`), or imported so users can replay their own serving load: the readers
of users' dumps live in ``moelab.imports`` (competition ``.npy``, SGLang, TensorRT-LLM, vLLM), which this
module does not import (what reads hotness must not depend on every reader). Import errors are
``moelab.imports.ImportFileError``, a :class:`HotnessError` naming the file and field. ``HotnessError`` is
defined in ``moelab.hotness_error``, which imports nothing, so the readers' error subclasses it without loading
this module's numpy and trace I/O; ``moelab.hotness.HotnessError`` is the same class.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from moelab.hotness_error import HotnessError
from moelab.traces import Trace


def from_trace(trace: Trace) -> np.ndarray:
    """``[I, L, E]`` int64 counts of routed tokens per iteration, layer and expert."""
    m = trace.meta
    I, L, E, C = trace.n_iterations, m.n_moe_layers, m.num_experts, m.concurrency
    ex = trace.experts_by_layer()  # [T, L, k]; T = I*C tokens in stream order
    # flat bin = (iteration * L + layer) * E + expert; iteration = t // C is the row block
    base = (np.arange(I, dtype=np.int64).repeat(C)[:, None] * L + np.arange(L)) * E
    bins = (base[:, :, None] + ex).ravel()
    return np.bincount(bins, minlength=I * L * E).reshape(I, L, E)


def validate(hot: np.ndarray, source: str | Path = "<hotness>") -> np.ndarray:
    """Check a hotness array: rank 3, numeric, finite, non-negative. Returns it as float64."""
    hot = np.asarray(hot)
    if hot.ndim != 3:
        raise HotnessError(f"{source}: hotness must be [iterations, layers, experts], got rank {hot.ndim} "
                           f"(shape {hot.shape})")
    if hot.dtype.kind not in "iuf":
        raise HotnessError(f"{source}: hotness must be numeric, got dtype {hot.dtype}")
    if min(hot.shape) < 1:
        raise HotnessError(f"{source}: hotness is empty (shape {hot.shape})")
    hot = hot.astype(np.float64)
    if not np.isfinite(hot).all():
        raise HotnessError(f"{source}: hotness holds NaN or infinite values "
                           f"(first at index {np.argwhere(~np.isfinite(hot))[0].tolist()})")
    if (hot < 0).any():
        raise HotnessError(f"{source}: hotness holds negative values "
                           f"(first at index {np.argwhere(hot < 0)[0].tolist()})")
    return hot
