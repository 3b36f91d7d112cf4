"""vLLM's map: it has no file input upstream, so the export is a ``torch.save``'d int64 tensor of its
in-memory ``physical_to_logical_map`` ``[MoE layers, physical]``, for code that sets its EPLB state."""

from __future__ import annotations

import io

import numpy as np

from moelab.exports.maps import ExportError, PathLike, checked_map, write_atomic


def write_vllm(path: PathLike, p2l: np.ndarray, *, ep_size: int | None = None,
               num_experts: int | None = None) -> None:
    """``torch.save`` of the int64 tensor ``[MoE layers, physical]``, vLLM's in-memory
    ``physical_to_logical_map``. vLLM has no file input for it: code that sets its EPLB state loads it.
    Saved through a buffer so the archive's inner name, hence the bytes, do not depend on the path."""
    import torch

    m = checked_map(p2l, num_experts, ep_size, str(path))
    buf = io.BytesIO()
    torch.save(torch.from_numpy(np.ascontiguousarray(m)), buf)
    write_atomic(path, buf.getvalue())


def read_vllm(path: PathLike, *, num_experts: int | None = None) -> np.ndarray:
    """The map in a file written by :func:`write_vllm` (or any ``torch.save``'d integer tensor ``[L, P]``)."""
    import torch

    try:
        t = torch.load(path, weights_only=True)
    except Exception as e:  # torch raises many kinds here (pickle, zip, runtime)
        raise ExportError(f"{path}: not a readable torch file ({type(e).__name__}: {e})") from None
    if not isinstance(t, torch.Tensor):
        raise ExportError(f"{path}: expected a tensor physical_to_logical_map; got {type(t).__name__}")
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise ExportError(f"{path}: physical_to_logical_map must hold integer expert ids; got {t.dtype}")
    return checked_map(t.to(torch.int64).numpy(), num_experts, None, f"{path}: physical_to_logical_map")
