"""Placements in the files serving engines load, and the sequence of redeployments (``docs/stages/exports.md``).

Every engine takes the same object: a physical-to-logical map ``[layers, physical experts]`` whose
physical slots are numbered GPU by GPU (GPU = physical id // slots per GPU), every slot holding one
logical expert. moelab's deployments are tables ``[L, D, S]`` of logical ids (-1 = an empty slot), so a
full deployment is such a map once each layer's table is read row by row; a static placement (a device
per expert) becomes one by listing each device's experts in ascending id.

- SGLang: JSON ``{"physical_to_logical_map": [[...], ...]}`` for ``--init-expert-location``;
- TensorRT-LLM: the ``MoeLoadBalancerConfig`` YAML (``num_slots``, ``initial_global_assignments``,
  ``layer_updates_per_iter``);
- vLLM: no file input upstream; a ``torch.save``'d int64 tensor of its in-memory map;
- the redeployment sequence: JSON lines, a header with the initial map, then one line per layer switch.

Writers check the engines' constraints (:func:`check`) before writing, write atomically and
byte-for-byte deterministically. Readers check what they read and name the file and the field.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from moelab.jobs import atomic_path

PathLike = str | os.PathLike
Change = tuple[int, int, np.ndarray]  # (iteration, layer, the layer's new map or table)

REDEPLOYMENTS_FORMAT = "moelab.redeployments"
REDEPLOYMENTS_VERSION = 1
_TRTLLM_FIELDS = ("initial_global_assignments", "layer_updates_per_iter", "num_slots")
_TRTLLM_NOTE = re.compile(r"^# moelab: ep_size=(\d+)\b", re.MULTILINE)


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


def logical_to_physical(p2l: np.ndarray, num_experts: int) -> tuple[np.ndarray, np.ndarray]:
    """The inverse maps an engine derives from ``p2l``: the physical ids of each expert ``[L, E, R]``
    (ascending, padded with -1; R = physical - E + 1, the most copies an expert can have) and the
    copies per expert ``[L, E]``. vLLM keeps both next to its physical-to-logical map."""
    m = np.asarray(p2l, dtype=np.int64)
    L, P = m.shape
    R = P - num_experts + 1
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


def _num_experts(p2l: np.ndarray, num_experts: int | None) -> int:
    """The logical expert count: given, or the largest id + 1 (the map then must hold every id below it)."""
    if num_experts is not None:
        return num_experts
    m = np.asarray(p2l)
    return int(m.max()) + 1 if m.size and m.dtype.kind in "iu" else 0


def _as_map(obj: object, where: str) -> np.ndarray:
    """A nested list read from a file as a rectangular int64 array ``[layers, physical]``."""
    if not isinstance(obj, list) or not obj or not all(isinstance(row, list) for row in obj):
        raise ExportError(f"{where}: expected a non-empty list of lists of expert ids")
    if any(isinstance(v, bool) or not isinstance(v, int) for row in obj for v in row):
        raise ExportError(f"{where}: expert ids must be integers")
    lengths = {len(row) for row in obj}
    if len(lengths) != 1:
        raise ExportError(f"{where}: rows have different lengths {sorted(lengths)}")
    return np.array(obj, dtype=np.int64).reshape(len(obj), lengths.pop())


def _checked(p2l: np.ndarray, num_experts: int | None, ep_size: int | None, where: str) -> np.ndarray:
    m = np.asarray(p2l)
    try:
        check(m, _num_experts(m, num_experts), 1 if ep_size is None else ep_size)
    except ExportError as e:
        raise ExportError(f"{where}: {e}") from None
    return m.astype(np.int64)


def _write_bytes(path: PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _json_rows(rows: np.ndarray) -> str:
    return ",\n".join(json.dumps(row) for row in np.asarray(rows).tolist())


# -------------------------------------------------------------------------------- SGLang


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
    m = _checked(p2l, num_experts, ep_size, str(path))
    E = _num_experts(m, num_experts)
    index = _layer_index(layers, m.shape[0], str(path))
    rows = np.broadcast_to(np.arange(m.shape[1]) % E, (index[-1] + 1, m.shape[1])).copy()
    rows[index] = m
    _write_bytes(path, ('{"physical_to_logical_map": [\n' + _json_rows(rows) + "\n]}\n").encode())


def _layer_index(layers: Sequence[int] | None, n: int, where: str) -> list[int]:
    """The decoder-layer index of each of ``n`` MoE rows: strictly increasing, >= 0."""
    index = list(range(n)) if layers is None else [int(x) for x in layers]
    if len(index) != n or any(b <= a for a, b in zip(index, index[1:])) or (index and index[0] < 0):
        raise ExportError(f"{where}: layers {index} must be {n} strictly increasing decoder-layer indices >= 0")
    return index


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
    m = _as_map(data["physical_to_logical_map"], f"{path}: physical_to_logical_map")
    if layers is not None:
        index = _layer_index(layers, len(layers), str(path))
        if index[-1] >= m.shape[0]:
            raise ExportError(f"{path}: physical_to_logical_map has {m.shape[0]} layers, not layer {index[-1]}")
        m = m[index]
    return _checked(m, num_experts, None, f"{path}: physical_to_logical_map")


# -------------------------------------------------------------------------------- TensorRT-LLM


def write_trtllm(path: PathLike, p2l: np.ndarray, ep_size: int, *, num_experts: int | None = None,
                 layers: Sequence[int] | None = None) -> None:
    """TensorRT-LLM's ``MoeLoadBalancerConfig`` YAML for a static placement.

    ``num_slots`` is the total over all ranks (each rank holds ``num_slots / ep_size`` consecutive
    slots), ``initial_global_assignments`` maps a layer index to its ``num_slots`` experts, and
    ``layer_updates_per_iter: 0`` keeps the placement static. Layer keys are the model's layer indices,
    ``layers`` (default 0, 1, ...; 3..60 for DeepSeek-V3/R1, whose first 3 layers are dense). The config
    forbids unknown keys, and the EP size comes from the launch, so ``ep_size`` goes in a comment."""
    m = _checked(p2l, num_experts, ep_size, str(path))
    E = _num_experts(m, num_experts)
    lines = [f"# moelab: ep_size={ep_size} num_experts={E} slots_per_rank={m.shape[1] // ep_size}",
             "initial_global_assignments:"]
    index = _layer_index(layers, m.shape[0], str(path))
    lines += [f"  {key}: {json.dumps(row)}" for key, row in zip(index, m.tolist())]  # flow lists
    lines += ["layer_updates_per_iter: 0", f"num_slots: {m.shape[1]}", ""]
    _write_bytes(path, "\n".join(lines).encode())


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
    m = _as_map([assign[k] for k in keys], f"{path}: initial_global_assignments")
    if m.shape[1] != slots:
        raise ExportError(f"{path}: initial_global_assignments lists have {m.shape[1]} experts, "
                          f"num_slots is {slots}")
    note = _TRTLLM_NOTE.search(text)
    ep_size = int(note.group(1)) if note else None
    return _checked(m, num_experts, ep_size, f"{path}: initial_global_assignments"), ep_size


# -------------------------------------------------------------------------------- vLLM


def write_vllm(path: PathLike, p2l: np.ndarray, *, ep_size: int | None = None,
               num_experts: int | None = None) -> None:
    """``torch.save`` of the int64 tensor ``[MoE layers, physical]``, vLLM's in-memory
    ``physical_to_logical_map``. vLLM has no file input for it: code that sets its EPLB state loads it.
    Saved through a buffer so the archive's inner name, hence the bytes, do not depend on the path."""
    import torch

    m = _checked(p2l, num_experts, ep_size, str(path))
    buf = io.BytesIO()
    torch.save(torch.from_numpy(np.ascontiguousarray(m)), buf)
    _write_bytes(path, buf.getvalue())


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
    return _checked(t.to(torch.int64).numpy(), num_experts, None, f"{path}: physical_to_logical_map")


# -------------------------------------------------------------------------------- redeployment sequence


def _change_row(table: np.ndarray, physical: int, where: str) -> np.ndarray:
    """A change's new map for its layer: a map row ``[P]`` or a table ``[D, S]`` read row by row."""
    row = np.asarray(table)
    if row.dtype.kind not in "iu" or row.size != physical or row.ndim not in (1, 2):
        raise ExportError(f"{where}: a layer's new placement is {physical} integer expert ids ([P] or [D, S]); "
                          f"got shape {row.shape}, dtype {row.dtype}")
    return row.reshape(physical).astype(np.int64)


def write_redeployments(path: PathLike, initial_p2l: np.ndarray, changes: Iterable[Change], ep_size: int,
                        *, num_experts: int | None = None) -> None:
    """The redeployment sequence as JSON lines: a header (format, version, layers, physical, ep_size,
    num_experts, the initial map), then one line per layer switch ``{"iteration", "layer",
    "physical_to_logical"}`` in order. Changes are ``(iteration, layer, new map [P] or table [D, S])``, as
    ``simulate(..., record=True)`` gives them; iterations must not decrease and every new map must be one
    an engine accepts, so the engine can apply the file line by line."""
    init = _checked(initial_p2l, num_experts, ep_size, f"{path}: initial map")
    L, P = init.shape
    E = _num_experts(init, num_experts)
    header = {"format": REDEPLOYMENTS_FORMAT, "version": REDEPLOYMENTS_VERSION, "layers": L, "physical": P,
              "ep_size": ep_size, "num_experts": E, "physical_to_logical": init.tolist()}
    lines = [json.dumps(header, sort_keys=True, separators=(",", ":"))]
    last = -1
    for n, (iteration, layer, table) in enumerate(changes):
        where = f"{path}: change {n}"
        iteration, layer = int(iteration), int(layer)
        if iteration < last or iteration < 0:
            raise ExportError(f"{where}: iteration {iteration} comes before the previous change's {last}")
        if not 0 <= layer < L:
            raise ExportError(f"{where}: layer {layer} is outside 0..{L - 1}")
        row = _change_row(table, P, where)
        _checked(row[None], E, ep_size, where)
        last = iteration
        lines.append(json.dumps({"iteration": iteration, "layer": layer, "physical_to_logical": row.tolist()},
                                sort_keys=True, separators=(",", ":")))
    _write_bytes(path, ("\n".join(lines) + "\n").encode())


def _int_field(obj: dict, key: str, where: str, minimum: int = 0) -> int:
    v = obj.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ExportError(f"{where}: field {key} must be an integer >= {minimum}; got {v!r}")
    return v


def read_redeployments(path: PathLike) -> tuple[np.ndarray, list[tuple[int, int, np.ndarray]]]:
    """The initial map ``[L, P]`` and the changes ``(iteration, layer, map row [P])`` of a sequence file,
    each line checked as :func:`write_redeployments` checks it."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ExportError(f"{path}: not readable ({e})") from None
    records = []
    for n, line in enumerate(lines, 1):
        try:
            obj = json.loads(line)
        except ValueError as e:
            raise ExportError(f"{path}, line {n}: not JSON ({e})") from None
        if not isinstance(obj, dict):
            raise ExportError(f"{path}, line {n}: expected a JSON object")
        records.append(obj)
    if not records:
        raise ExportError(f"{path}: empty; expected a header line")
    head, where = records[0], f"{path}, line 1 (header)"
    if head.get("format") != REDEPLOYMENTS_FORMAT or head.get("version") != REDEPLOYMENTS_VERSION:
        raise ExportError(f"{where}: field format/version must be {REDEPLOYMENTS_FORMAT!r}/{REDEPLOYMENTS_VERSION}; "
                          f"got {head.get('format')!r}/{head.get('version')!r}")
    L, P = _int_field(head, "layers", where, 1), _int_field(head, "physical", where, 1)
    ep_size, E = _int_field(head, "ep_size", where, 1), _int_field(head, "num_experts", where, 1)
    init = _as_map(head.get("physical_to_logical"), f"{where}: field physical_to_logical")
    if init.shape != (L, P):
        raise ExportError(f"{where}: field physical_to_logical has shape {init.shape}, the header says ({L}, {P})")
    init = _checked(init, E, ep_size, f"{where}: field physical_to_logical")
    changes, last = [], -1
    for n, obj in enumerate(records[1:], 2):
        where = f"{path}, line {n}"
        if set(obj) != {"iteration", "layer", "physical_to_logical"}:
            raise ExportError(f"{where}: fields must be iteration, layer, physical_to_logical; got {sorted(obj)}")
        iteration, layer = _int_field(obj, "iteration", where), _int_field(obj, "layer", where)
        if iteration < last:
            raise ExportError(f"{where}: field iteration {iteration} comes before the previous line's {last}")
        if layer >= L:
            raise ExportError(f"{where}: field layer {layer} is outside 0..{L - 1}")
        row = _as_map([obj["physical_to_logical"]], f"{where}: field physical_to_logical")
        if row.shape[1] != P:
            raise ExportError(f"{where}: field physical_to_logical has {row.shape[1]} slots, the header says {P}")
        changes.append((iteration, layer, _checked(row, E, ep_size, f"{where}: field physical_to_logical")[0]))
        last = iteration
    return init, changes


def replay(initial: np.ndarray, changes: Sequence[Change], upto_iteration: int) -> np.ndarray:
    """The placement in force at ``upto_iteration``: ``initial`` with every change of an iteration
    <= ``upto_iteration`` applied in order (a change takes effect at its own iteration). Works on maps
    ``[L, P]`` with rows ``[P]`` and on deployments ``[L, D, S]`` with tables ``[D, S]`` alike."""
    out = np.array(initial, copy=True)
    for iteration, layer, table in changes:
        if iteration > upto_iteration:
            break
        out[layer] = np.asarray(table).reshape(out[layer].shape)
    return out
