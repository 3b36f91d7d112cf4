"""The object every engine loads, the physical-to-logical map, and what the file formats share.

A map is ``[layers, physical experts]`` with physical slots numbered GPU by GPU (GPU = physical id // slots
per GPU), every slot holding one logical expert. moelab's deployments are tables ``[L, D, S]`` of logical ids
(-1 = an empty slot), so a full deployment is such a map once each layer's table is read row by row
(:func:`physical_to_logical`); a static placement (a device per expert) becomes one by listing each device's
experts in ascending id (:func:`from_static`). :func:`check` holds the engines' constraints; every writer
checks them before writing and every reader after reading (:func:`checked_map`), and a placement an engine
would refuse or a file that does not hold what it should is an :class:`ExportError`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from moelab.jobs import atomic_path

PathLike = str | os.PathLike


class ExportError(ValueError):
    """A placement an engine would refuse, or a placement file that does not hold what it should."""


# -------------------------------------------------------------------------------- building maps


def physical_to_logical(tables: np.ndarray) -> np.ndarray:
    """The map ``[L, D*S]`` (int64) of a deployment ``[L, D, S]``: GPU d owns physical ids d*S .. d*S+S-1.

    Engines have no empty slot: every physical slot computes for the expert it holds, so an empty slot
    cannot be written without inventing an expert for it (which would change how load splits). An empty
    slot (-1) therefore raises, naming the layer and device: export only full deployments (every
    redundant slot given a replica), or use :func:`from_static` for a placement without redundancy."""
    t = np.asarray(tables)
    if t.ndim != 3:
        raise ExportError(f"a deployment is [layers, devices, slots]; got shape {t.shape}")
    if t.dtype.kind not in "iu":
        raise ExportError(f"a deployment holds integer expert ids; got dtype {t.dtype}")
    empty = np.argwhere(t < 0)
    if len(empty):
        layer, device, slot = (int(v) for v in empty[0])
        raise ExportError(f"layer {layer}, device {device}: slot {slot} is empty ({len(empty)} empty slot(s) in "
                          f"all); engines need every slot to hold an expert: export a full deployment")
    L, D, S = t.shape
    return t.reshape(L, D * S).astype(np.int64)


def from_static(device_of_expert: np.ndarray, devices: int | None = None) -> np.ndarray:
    """The map ``[L, E]`` of a static placement (a device id per expert, ``[L, E]`` or ``[E]`` for one
    layer): device d's E/D experts fill slots d*E/D .. in ascending expert id, so the result does not
    depend on the order the placement happened to list them in. ``devices`` defaults to the largest id + 1."""
    dev = np.asarray(device_of_expert)
    if dev.ndim == 1:
        dev = dev[None, :]
    if dev.ndim != 2 or dev.dtype.kind not in "iu":
        raise ExportError(f"a static placement is an integer device id per expert [layers, experts]; "
                          f"got shape {dev.shape}, dtype {dev.dtype}")
    L, E = dev.shape
    D = int(dev.max()) + 1 if devices is None else devices
    if D < 1 or E % D:
        raise ExportError(f"{E} experts do not split evenly over {D} devices")
    if dev.min() < 0 or dev.max() >= D:
        raise ExportError(f"device ids must lie in 0..{D - 1}; got {int(dev.min())}..{int(dev.max())}")
    for layer in range(L):
        counts = np.bincount(dev[layer], minlength=D)
        if (counts != E // D).any():
            d = int(np.argmax(counts != E // D))
            raise ExportError(f"layer {layer}: device {d} holds {int(counts[d])} experts, not E/D = {E // D}")
    return np.argsort(dev, axis=1, kind="stable").astype(np.int64)  # by device, then by expert id


VLLM_REPLICA_WIDTH = 1024  # vLLM's logical_to_physical_map: MAX_EXPERT_REDUNDANCY (1023) + 1 columns


def logical_to_physical(p2l: np.ndarray, num_experts: int, width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The inverse maps an engine derives from ``p2l``: the physical ids of each expert ``[L, E, R]``
    (ascending, padded with -1; R = physical - E + 1, the most copies an expert can have, or ``width``) and
    the copies per expert ``[L, E]``. vLLM keeps both next to its physical-to-logical map, its buffer padded to
    ``VLLM_REPLICA_WIDTH`` columns: code that copies ours into vLLM's state passes ``width=VLLM_REPLICA_WIDTH``."""
    m = np.asarray(p2l, dtype=np.int64)
    L, P = m.shape
    R = P - num_experts + 1
    if width is not None:
        if width < R:
            raise ExportError(f"width {width} is below the {R} copies an expert can have in a {P}-slot map")
        R = width
    out = np.full((L, num_experts, R), -1, np.int64)
    count = np.zeros((L, num_experts), np.int64)
    for layer in range(L):
        for phys, expert in enumerate(m[layer].tolist()):
            out[layer, expert, count[layer, expert]] = phys
            count[layer, expert] += 1
    return out, count


# -------------------------------------------------------------------------------- constraints


def check(p2l: np.ndarray, num_experts: int, ep_size: int) -> None:
    """Raise :class:`ExportError` unless ``p2l`` is a map every engine here accepts for ``num_experts``
    logical experts on ``ep_size`` ranks: rank 2, integer, physical count >= experts and divisible by
    ``ep_size`` (equal slots per GPU), every id in 0..E-1, every expert in every layer at least once."""
    m = np.asarray(p2l)
    if m.ndim != 2:
        raise ExportError(f"a physical-to-logical map is [layers, physical experts]; got rank {m.ndim}, "
                          f"shape {m.shape}")
    if m.dtype.kind not in "iu":
        raise ExportError(f"a physical-to-logical map holds integer expert ids; got dtype {m.dtype}")
    L, P = m.shape
    if L < 1:
        raise ExportError("a physical-to-logical map needs at least one layer")
    if num_experts < 1 or ep_size < 1:
        raise ExportError(f"num_experts ({num_experts}) and ep_size ({ep_size}) must be positive")
    if P < num_experts:
        raise ExportError(f"{P} physical slots cannot hold {num_experts} logical experts")
    if P % ep_size:
        raise ExportError(f"{P} physical slots do not split evenly over ep_size {ep_size}")
    bad = np.argwhere((m < 0) | (m >= num_experts))
    if len(bad):
        layer, phys = (int(v) for v in bad[0])
        raise ExportError(f"layer {layer}, physical slot {phys}: expert id {int(m[layer, phys])} is outside "
                          f"0..{num_experts - 1}")
    for layer in range(L):
        copies = np.bincount(m[layer], minlength=num_experts)
        if (copies == 0).any():
            raise ExportError(f"layer {layer}: logical expert {int(np.argmin(copies))} has no physical slot")


# -------------------------------------------------------------------------------- what every format shares


def expert_count(p2l: np.ndarray, num_experts: int | None) -> int:
    """The logical expert count: given, or the largest id + 1 (the map then must hold every id below it)."""
    if num_experts is not None:
        return num_experts
    m = np.asarray(p2l)
    return int(m.max()) + 1 if m.size and m.dtype.kind in "iu" else 0


def as_map(obj: object, where: str) -> np.ndarray:
    """A nested list read from a file as a rectangular int64 array ``[layers, physical]``."""
    if not isinstance(obj, list) or not obj or not all(isinstance(row, list) for row in obj):
        raise ExportError(f"{where}: expected a non-empty list of lists of expert ids")
    if any(isinstance(v, bool) or not isinstance(v, int) for row in obj for v in row):
        raise ExportError(f"{where}: expert ids must be integers")
    lengths = {len(row) for row in obj}
    if len(lengths) != 1:
        raise ExportError(f"{where}: rows have different lengths {sorted(lengths)}")
    return np.array(obj, dtype=np.int64).reshape(len(obj), lengths.pop())


def checked_map(p2l: np.ndarray, num_experts: int | None, ep_size: int | None, where: str) -> np.ndarray:
    """``p2l`` as int64 once :func:`check` accepts it; its error prefixed with ``where`` (the file, the field)."""
    m = np.asarray(p2l)
    try:
        check(m, expert_count(m, num_experts), 1 if ep_size is None else ep_size)
    except ExportError as e:
        raise ExportError(f"{where}: {e}") from None
    return m.astype(np.int64)


def layer_index(layers: Sequence[int] | None, n: int, where: str) -> list[int]:
    """The decoder-layer index of each of ``n`` MoE rows: strictly increasing, >= 0."""
    index = list(range(n)) if layers is None else [int(x) for x in layers]
    if len(index) != n or any(b <= a for a, b in zip(index, index[1:])) or (index and index[0] < 0):
        raise ExportError(f"{where}: layers {index} must be {n} strictly increasing decoder-layer indices >= 0")
    return index


def write_atomic(path: PathLike, data: bytes) -> None:
    """``data`` as the file ``path``, which appears whole or not at all."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
