"""Hotness: per-iteration expert loads ``[iterations, layers, experts]`` (token counts, zeros kept).

From a trace (:func:`from_trace`), or imported so users can replay their own serving load:
the placement competition's ``.npy`` files (:func:`load_npy`, same layout) and SGLang's expert
distribution recorder dumps (:func:`load_sglang`, ``stat`` and ``per_pass`` modes). Imports are
validated (rank, non-negative, finite, consistent expert counts) and raise :class:`HotnessError`
naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from moelab.traces import Trace


class HotnessError(ValueError):
    """A hotness file is not usable, and why."""


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


def load_npy(path: str | Path) -> np.ndarray:
    """The placement competition's ``.npy`` hotness ``[iterations, layers, experts]``."""
    path = Path(path)
    try:
        hot = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise HotnessError(f"{path}: no such hotness file") from None
    except (ValueError, OSError) as exc:
        raise HotnessError(f"{path}: not a readable .npy array ({exc})") from None
    return validate(hot, path)


def _tensor(x, what: str, path: Path) -> np.ndarray:  # noqa: ANN001 - a torch tensor or array
    try:
        return np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)
    except Exception as exc:  # noqa: BLE001
        raise HotnessError(f"{path}: {what} is not an array ({exc})") from None


def load_sglang(path: str | Path) -> np.ndarray:
    """An SGLang expert-distribution-recorder dump (``torch.save`` of a dict).

    ``stat`` mode: ``logical_count`` ``[forward passes, layers, logical experts]`` is the hotness.
    ``per_pass`` mode: ``records`` (one per forward pass and rank, ``global_physical_count``
    ``[layers, physical experts]``) are summed over ranks per pass and mapped to logical experts
    through ``last_physical_to_logical_map`` ``[layers, physical experts]``.
    """
    import torch

    path = Path(path)
    if not path.exists():
        raise HotnessError(f"{path}: no such SGLang dump")
    try:
        dump = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        raise HotnessError(f"{path}: not a readable torch.save file ({exc})") from None
    if not isinstance(dump, dict):
        raise HotnessError(f"{path}: expected a dict (SGLang recorder dump), got {type(dump).__name__}")
    if "logical_count" in dump:
        return validate(_tensor(dump["logical_count"], "logical_count", path), path)
    if "records" not in dump:
        raise HotnessError(f"{path}: neither 'logical_count' (stat mode) nor 'records' (per_pass mode) "
                           f"in the dump; keys: {sorted(dump)}")
    if "last_physical_to_logical_map" not in dump:
        raise HotnessError(f"{path}: per_pass dump lacks 'last_physical_to_logical_map'")
    p2l = _tensor(dump["last_physical_to_logical_map"], "last_physical_to_logical_map", path).astype(np.int64)
    if p2l.ndim != 2 or (p2l < 0).any():
        raise HotnessError(f"{path}: last_physical_to_logical_map must be [layers, physical experts] of "
                           f"expert ids >= 0, got shape {p2l.shape}")
    L, P = p2l.shape
    E = int(p2l.max()) + 1
    passes: dict[int, np.ndarray] = {}
    for i, rec in enumerate(dump["records"]):
        if "global_physical_count" not in rec or "forward_pass_id" not in rec:
            raise HotnessError(f"{path}: records[{i}] lacks forward_pass_id or global_physical_count "
                               f"(per_token dumps hold routed ids, not counts)")
        c = validate(_tensor(rec["global_physical_count"], "global_physical_count", path)[None], path)[0]
        if c.shape != (L, P):
            raise HotnessError(f"{path}: records[{i}].global_physical_count has shape {c.shape}, the "
                               f"physical-to-logical map says {(L, P)}")
        fp = int(rec["forward_pass_id"])
        passes[fp] = passes.get(fp, 0) + c
    if not passes:
        raise HotnessError(f"{path}: per_pass dump has no records")
    out = np.zeros((len(passes), L, E))
    rows = np.repeat(np.arange(L), P)
    for j, fp in enumerate(sorted(passes)):
        np.add.at(out[j], (rows, p2l.ravel()), passes[fp].ravel())
    return validate(out, path)
