"""Reading the containers users' dumps come in (torch.save, safetensors, .npy, JSON), and the
physical-to-logical expert map that turns physical slots (replicas) into logical experts.

Every reader turns a container problem into an ImportFileError naming the file and the field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from moelab.hotness import HotnessError, validate
from moelab.imports.errors import ImportFileError, fail
from moelab.imports.layout import need_file


def torch_load(path: Path, *, mmap: bool = False) -> Any:
    """``torch.load`` of plain data only (``weights_only``: a dump never runs code). ``mmap`` maps tensor
    storage without reading it (the cheap checks); files in torch's legacy format fall back to a full read."""
    import torch

    need_file(path, "torch.save file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad or legacy file
        if mmap:
            return torch_load(path, mmap=False)
        raise fail(path, "", f"not a readable torch.save file ({type(exc).__name__}: {exc})") from None


def as_array(x: Any, path: Path, field: str, kinds: str = "iuf") -> np.ndarray:
    """A tensor, array or nested list as a numpy array whose dtype kind is in ``kinds``."""
    try:
        a = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)
    except Exception as exc:  # noqa: BLE001 - anything that is not array-like
        raise fail(path, field, f"expected an array, got {type(x).__name__} ({exc})") from None
    if a.dtype.kind not in kinds:
        want = "integer" if kinds in ("iu", "i") else "numeric"
        raise fail(path, field, f"expected {want} values, got dtype {a.dtype}")
    return a


def counts(x: Any, path: Path, field: str, ndim: int, shape_names: str) -> np.ndarray:
    """Non-negative finite counts of rank ``ndim`` as float64 (exact for integers below 2^53)."""
    a = as_array(x, path, field)
    if a.ndim != ndim:
        raise fail(path, field, f"expected {shape_names}, got rank {a.ndim} (shape {tuple(a.shape)})")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise fail(path, field, f"holds NaN or infinite values (first at index "
                                f"{np.argwhere(~np.isfinite(a))[0].tolist()}); expected counts")
    if (a < 0).any():
        raise fail(path, field, f"holds negative values (first at index {np.argwhere(a < 0)[0].tolist()}); "
                                f"expected counts >= 0")
    return a


def checked_hotness(hot: np.ndarray, source: str | Path) -> np.ndarray:
    """moelab's hotness checks (rank 3, finite, non-negative) as an ImportFileError."""
    try:
        return validate(hot, source)
    except HotnessError as exc:
        raise ImportFileError(str(exc)) from None


def load_map_file(path: str | Path) -> np.ndarray:
    """A ``[layers, physical experts]`` map from .npy, .pt (a tensor or a dict holding
    ``physical_to_logical_map``, SGLang's ``--init-expert-location`` layout) or .json (a list of lists or that
    dict)."""
    path = Path(path)
    need_file(path, "physical_to_logical map")
    field = "physical_to_logical_map"
    if path.suffix == ".npy":
        try:
            raw = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise fail(path, "", f"not a readable .npy array ({exc})") from None
    elif path.suffix == ".json":
        try:
            raw = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise fail(path, "", f"not valid JSON ({exc})") from None
    else:
        raw = torch_load(path)
    if isinstance(raw, dict):
        if field not in raw:
            raise fail(path, field, f"missing: the dict has keys {sorted(map(str, raw))}")
        raw = raw[field]
    return as_array(raw, path, field, "iu")


def check_map(p2l: np.ndarray, path: str | Path, field: str, experts: int | None = None) -> tuple[np.ndarray, int]:
    """Check a ``[layers, physical]`` map: ids >= 0 and, per layer, every logical id 0..E-1 present (an
    expert nobody holds could not be routed to). Returns (int64 map, E); ``experts`` pins E."""
    p2l = np.asarray(p2l)
    if p2l.ndim != 2 or min(p2l.shape) < 1:
        raise fail(path, field, f"expected [layers, physical experts], got shape {tuple(p2l.shape)}")
    if p2l.dtype.kind not in "iu":
        raise fail(path, field, f"expected integer expert ids, got dtype {p2l.dtype}")
    p2l = p2l.astype(np.int64)
    if (p2l < 0).any():
        ly, p = np.argwhere(p2l < 0)[0].tolist()
        raise fail(path, field, f"layer {ly} physical {p} holds {p2l[ly, p]}: expected a logical id >= 0")
    E = int(p2l.max()) + 1 if experts is None else experts
    if experts is not None and int(p2l.max()) >= experts:
        ly, p = np.argwhere(p2l >= experts)[0].tolist()
        raise fail(path, field, f"layer {ly} physical {p} holds logical id {p2l[ly, p]}, outside experts={experts}")
    for layer, row in enumerate(p2l):
        present = np.bincount(row, minlength=E)
        if (present == 0).any():
            missing = np.flatnonzero(present == 0)
            raise fail(path, field, f"layer {layer} holds no replica of logical expert(s) "
                                    f"{missing[:8].tolist()}: expected every id 0..{E - 1}")
    return p2l, E


def to_logical(physical: np.ndarray, p2l: np.ndarray, E: int) -> np.ndarray:
    """``[..., layers, physical]`` counts -> ``[..., layers, E]`` logical counts, replicas summed."""
    L, P = p2l.shape
    lead = physical.shape[:-2]
    flat = physical.reshape(-1, L * P).T  # [L*P, N]
    out = np.zeros((L * E, flat.shape[1]))
    np.add.at(out, (np.arange(L)[:, None] * E + p2l).ravel(), flat)
    return out.T.reshape(*lead, L, E)


def pick_layers(a: np.ndarray, axis: int, moe_layers: tuple[int, ...] | None, path: Path, field: str) -> np.ndarray:
    """Keep the configured MoE layers (decoder-layer indices) along ``axis``; all of them when unset."""
    if moe_layers is None:
        return a
    n = a.shape[axis]
    if max(moe_layers) >= n:
        raise fail(path, field, f"has {n} layers; moe_layers lists layer {max(moe_layers)} (expected indices "
                                f"below {n})")
    return np.take(a, list(moe_layers), axis=axis)
