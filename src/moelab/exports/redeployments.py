"""The sequence of redeployments of a dynamic run as JSON lines: a header with the initial map, then one
line per layer switch, so an engine can be driven through the same sequence line by line; and
:func:`replay`, the placement in force at any iteration."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from moelab.exports.maps import (ExportError, PathLike, as_map, checked_map, expert_count, layer_index,
                                 write_atomic)

Change = tuple[int, int, np.ndarray]  # (iteration, layer, the layer's new map or table)

REDEPLOYMENTS_FORMAT = "moelab.redeployments"
REDEPLOYMENTS_VERSION = 2  # 2: each layer's decoder-layer index (the index SGLang and TensorRT-LLM use)


def _change_row(table: np.ndarray, physical: int, where: str) -> np.ndarray:
    """A change's new map for its layer: a map row ``[P]`` or a table ``[D, S]`` read row by row."""
    row = np.asarray(table)
    if row.dtype.kind not in "iu" or row.size != physical or row.ndim not in (1, 2):
        raise ExportError(f"{where}: a layer's new placement is {physical} integer expert ids ([P] or [D, S]); "
                          f"got shape {row.shape}, dtype {row.dtype}")
    return row.reshape(physical).astype(np.int64)


def write_redeployments(path: PathLike, initial_p2l: np.ndarray, changes: Iterable[Change], ep_size: int,
                        *, num_experts: int | None = None, layers: Sequence[int] | None = None) -> None:
    """The redeployment sequence as JSON lines: a header (format, version, layers, physical, ep_size,
    num_experts, decoder_layers, the initial map), then one line per layer switch ``{"iteration", "layer",
    "decoder_layer", "physical_to_logical"}`` in order. ``layer`` is the map's row (the MoE layer's position);
    ``decoder_layer`` the model's layer index, ``layers[layer]`` (default the row itself), which SGLang's and
    TensorRT-LLM's files use, so a driver places a change in a model with dense layers without a lookup.
    Changes are ``(iteration, layer, new map [P] or table [D, S])``, as ``simulate(..., record=True)`` gives
    them; iterations must not decrease and every new map must be one an engine accepts, so the engine can
    apply the file line by line."""
    init = checked_map(initial_p2l, num_experts, ep_size, f"{path}: initial map")
    L, P = init.shape
    E = expert_count(init, num_experts)
    decoder = layer_index(layers, L, str(path))
    header = {"format": REDEPLOYMENTS_FORMAT, "version": REDEPLOYMENTS_VERSION, "layers": L, "physical": P,
              "ep_size": ep_size, "num_experts": E, "decoder_layers": decoder, "physical_to_logical": init.tolist()}
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
        checked_map(row[None], E, ep_size, where)
        last = iteration
        lines.append(json.dumps({"iteration": iteration, "layer": layer, "decoder_layer": decoder[layer],
                                 "physical_to_logical": row.tolist()}, sort_keys=True, separators=(",", ":")))
    write_atomic(path, ("\n".join(lines) + "\n").encode())


def _int_field(obj: dict, key: str, where: str, minimum: int = 0) -> int:
    v = obj.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ExportError(f"{where}: field {key} must be an integer >= {minimum}; got {v!r}")
    return v


def read_redeployments(path: PathLike, *, with_layers: bool = False):
    """The initial map ``[L, P]`` and the changes ``(iteration, layer, map row [P])`` of a sequence file,
    each line checked as :func:`write_redeployments` checks it; with ``with_layers``, also the decoder-layer
    index of each row."""
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
    init = as_map(head.get("physical_to_logical"), f"{where}: field physical_to_logical")
    if init.shape != (L, P):
        raise ExportError(f"{where}: field physical_to_logical has shape {init.shape}, the header says ({L}, {P})")
    init = checked_map(init, E, ep_size, f"{where}: field physical_to_logical")
    decoder = head.get("decoder_layers")
    if (not isinstance(decoder, list) or len(decoder) != L
            or any(isinstance(x, bool) or not isinstance(x, int) or x < 0 for x in decoder)
            or any(b <= a for a, b in zip(decoder, decoder[1:]))):
        raise ExportError(f"{where}: field decoder_layers must be {L} increasing layer indices >= 0; got {decoder!r}")
    changes, last = [], -1
    for n, obj in enumerate(records[1:], 2):
        where = f"{path}, line {n}"
        if set(obj) != {"iteration", "layer", "decoder_layer", "physical_to_logical"}:
            raise ExportError(f"{where}: fields must be iteration, layer, decoder_layer, physical_to_logical; "
                              f"got {sorted(obj)}")
        iteration, layer = _int_field(obj, "iteration", where), _int_field(obj, "layer", where)
        if iteration < last:
            raise ExportError(f"{where}: field iteration {iteration} comes before the previous line's {last}")
        if layer >= L:
            raise ExportError(f"{where}: field layer {layer} is outside 0..{L - 1}")
        if obj["decoder_layer"] != decoder[layer]:
            raise ExportError(f"{where}: field decoder_layer {obj['decoder_layer']!r} is not decoder_layers[{layer}] "
                              f"= {decoder[layer]}")
        row = as_map([obj["physical_to_logical"]], f"{where}: field physical_to_logical")
        if row.shape[1] != P:
            raise ExportError(f"{where}: field physical_to_logical has {row.shape[1]} slots, the header says {P}")
        changes.append((iteration, layer, checked_map(row, E, ep_size, f"{where}: field physical_to_logical")[0]))
        last = iteration
    return (init, changes, decoder) if with_layers else (init, changes)


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
