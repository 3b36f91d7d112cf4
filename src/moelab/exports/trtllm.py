"""TensorRT-LLM's placement file: the ``MoeLoadBalancerConfig`` YAML (``num_slots``,
``initial_global_assignments``, ``layer_updates_per_iter``) of a static placement."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from moelab.exports.maps import ExportError, PathLike, as_map, checked_map, expert_count, layer_index, write_atomic

_TRTLLM_FIELDS = ("initial_global_assignments", "layer_updates_per_iter", "num_slots")
_TRTLLM_NOTE = re.compile(r"^# moelab: ep_size=(\d+)\b", re.MULTILINE)


def write_trtllm(path: PathLike, p2l: np.ndarray, ep_size: int, *, num_experts: int | None = None,
                 layers: Sequence[int] | None = None) -> None:
    """TensorRT-LLM's ``MoeLoadBalancerConfig`` YAML for a static placement.

    ``num_slots`` is the total over all ranks (each rank holds ``num_slots / ep_size`` consecutive
    slots), ``initial_global_assignments`` maps a layer index to its ``num_slots`` experts, and
    ``layer_updates_per_iter: 0`` keeps the placement static. Layer keys are the model's layer indices,
    ``layers`` (default 0, 1, ...; 3..60 for DeepSeek-V3/R1, whose first 3 layers are dense). The config
    forbids unknown keys, and the EP size comes from the launch, so ``ep_size`` goes in a comment."""
    m = checked_map(p2l, num_experts, ep_size, str(path))
    E = expert_count(m, num_experts)
    lines = [f"# moelab: ep_size={ep_size} num_experts={E} slots_per_rank={m.shape[1] // ep_size}",
             "initial_global_assignments:"]
    index = layer_index(layers, m.shape[0], str(path))
    lines += [f"  {key}: {json.dumps(row)}" for key, row in zip(index, m.tolist())]  # flow lists
    lines += ["layer_updates_per_iter: 0", f"num_slots: {m.shape[1]}", ""]
    write_atomic(path, "\n".join(lines).encode())


def read_trtllm(path: PathLike, *, num_experts: int | None = None) -> tuple[np.ndarray, int | None]:
    """The map ``[layers, num_slots]`` (layers renumbered from 0 in key order) and the EP size noted by
    :func:`write_trtllm` (None in a file from elsewhere: TensorRT-LLM's own files do not carry it)."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text()
        data = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ExportError(f"{path}: not a readable YAML file ({e})") from None
    if not isinstance(data, dict):
        raise ExportError(f"{path}: expected a mapping with {', '.join(_TRTLLM_FIELDS)}")
    unknown = sorted(map(str, set(data) - set(_TRTLLM_FIELDS)))
    if unknown:
        raise ExportError(f"{path}: unknown field(s) {unknown} (MoeLoadBalancerConfig forbids them)")
    slots = data.get("num_slots")
    if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1:
        raise ExportError(f"{path}: num_slots must be a positive integer; got {slots!r}")
    updates = data.get("layer_updates_per_iter", 0)
    if isinstance(updates, bool) or not isinstance(updates, int) or updates < 0:
        raise ExportError(f"{path}: layer_updates_per_iter must be a non-negative integer; got {updates!r}")
    assign = data.get("initial_global_assignments")
    if not isinstance(assign, dict) or not assign:
        raise ExportError(f"{path}: initial_global_assignments must map layer indices to expert lists")
    if any(isinstance(k, bool) or not isinstance(k, int) for k in assign):
        raise ExportError(f"{path}: initial_global_assignments keys must be integer layer indices")
    keys = sorted(assign)  # the MoE layers' indices: consecutive unless dense layers sit between them
    m = as_map([assign[k] for k in keys], f"{path}: initial_global_assignments")
    if m.shape[1] != slots:
        raise ExportError(f"{path}: initial_global_assignments lists have {m.shape[1]} experts, "
                          f"num_slots is {slots}")
    note = _TRTLLM_NOTE.search(text)
    ep_size = int(note.group(1)) if note else None
    return checked_map(m, num_experts, ep_size, f"{path}: initial_global_assignments"), ep_size
