"""SGLang's placement file: the JSON ``{"physical_to_logical_map": [[...], ...]}`` that
``--init-expert-location`` pins, indexed by decoder layer (dense layers included)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from moelab.exports.maps import ExportError, PathLike, as_map, checked_map, expert_count, layer_index, write_atomic


def write_sglang(path: PathLike, p2l: np.ndarray, *, ep_size: int | None = None, num_experts: int | None = None,
                 layers: Sequence[int] | None = None) -> None:
    """The JSON SGLang's ``--init-expert-location`` pins: a single key, ``physical_to_logical_map``.

    SGLang indexes the map by decoder layer, dense layers included: ``layers`` gives the decoder-layer
    index of each row of ``p2l`` (default 0, 1, ...), and every other row up to the last MoE layer (the
    dense layers: the first 3 of DeepSeek-V3/R1) holds SGLang's own trivial map (physical p -> p mod E),
    which those layers never read. The path must end in ``.json``: SGLang parses any other argument that
    is not a ``.pt`` file as inline JSON."""
    if Path(path).suffix != ".json":
        raise ExportError(f"{path}: SGLang reads a placement file only when its name ends in .json")
    m = checked_map(p2l, num_experts, ep_size, str(path))
    E = expert_count(m, num_experts)
    index = layer_index(layers, m.shape[0], str(path))
    rows = np.broadcast_to(np.arange(m.shape[1]) % E, (index[-1] + 1, m.shape[1])).copy()
    rows[index] = m
    write_atomic(path, ('{"physical_to_logical_map": [\n' + _json_rows(rows) + "\n]}\n").encode())


def _json_rows(rows: np.ndarray) -> str:
    return ",\n".join(json.dumps(row) for row in np.asarray(rows).tolist())


def read_sglang(path: PathLike, *, num_experts: int | None = None,
                layers: Sequence[int] | None = None) -> np.ndarray:
    """The map in an SGLang placement file (``.json``, or a ``.pt`` holding the same dict): the rows of the
    decoder layers ``layers`` (the MoE ones; default: every row)."""
    path = Path(path)
    try:
        if path.suffix == ".pt":
            import torch

            data = torch.load(path, weights_only=True)
            if isinstance(data, dict) and isinstance(data.get("physical_to_logical_map"), torch.Tensor):
                data = {**data, "physical_to_logical_map": data["physical_to_logical_map"].tolist()}
        else:
            data = json.loads(path.read_text())
    except (OSError, ValueError, RuntimeError) as e:
        raise ExportError(f"{path}: not a readable placement file ({e})") from None
    if not isinstance(data, dict) or "physical_to_logical_map" not in data:
        raise ExportError(f"{path}: expected an object with the key physical_to_logical_map")
    if set(data) != {"physical_to_logical_map"}:  # SGLang passes the dict's keys on as arguments
        raise ExportError(f"{path}: unexpected keys {sorted(set(data) - {'physical_to_logical_map'})} "
                          f"(SGLang accepts physical_to_logical_map alone)")
    m = as_map(data["physical_to_logical_map"], f"{path}: physical_to_logical_map")
    if layers is not None:
        index = layer_index(layers, len(layers), str(path))
        if index[-1] >= m.shape[0]:
            raise ExportError(f"{path}: physical_to_logical_map has {m.shape[0]} layers, not layer {index[-1]}")
        m = m[index]
    return checked_map(m, num_experts, None, f"{path}: physical_to_logical_map")
