"""``ImportSpec.check_files``: what can be checked before any job without reading the data.

Headers only where the container allows it (npy header through a memory map, the safetensors header parsed
once per file, with the TensorRT-LLM key grid checked by set operations, parquet schemas and row counts,
``meta_info.json``); torch.save dumps are opened with memory-mapped tensors, one rank file at a time, so their
structure (keys, ranks, records) is checked without reading the arrays. The checks take the spec's values, not
the spec: ``ImportSpec.check_files`` imports this module, and only when it runs (numpy and the container readers).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import moelab.imports.hotness_formats as hf
import moelab.imports.layout as layout
import moelab.imports.sglang_dumps as sglang_dumps
from moelab.imports.errors import fail
from moelab.imports.loaders import as_array, check_map, load_map_file, safetensors_header, torch_load
from moelab.imports.sglang_dumps import PER_TOKEN_FIELDS


def _map(map_path: str | None, experts: int | None) -> tuple[np.ndarray, int] | None:
    if map_path is None:
        return None
    return check_map(load_map_file(map_path), map_path, "physical_to_logical", experts)


def _npy(path: Path, experts: int | None) -> None:
    path = layout.need_file(path, "competition .npy hotness")
    try:
        a = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise fail(path, "", f"not a readable .npy array ({exc})") from None
    if a.ndim != 3 or a.dtype.kind not in "iuf":
        raise fail(path, "", f"expected a numeric [iterations, layers, experts] array, got shape {a.shape} "
                             f"dtype {a.dtype}")
    if experts is not None and a.shape[2] != experts:
        raise fail(path, "experts axis", f"has {a.shape[2]} experts, the config says experts={experts}")


def _stat(path: Path, moe_layers: tuple[int, ...] | None, experts: int | None, ring_start: int | None) -> None:
    d = torch_load(path, mmap=True)
    if not isinstance(d, dict) or "logical_count" not in d:
        raise fail(path, "logical_count", "missing: expected an SGLang stat-mode dump (a dict with logical_count)")
    a = as_array(d["logical_count"], path, "logical_count")
    if a.ndim != 3:
        raise fail(path, "logical_count", f"expected [passes, layers, logical experts], got shape {tuple(a.shape)}")
    if moe_layers is not None and max(moe_layers) >= a.shape[1]:
        raise fail(path, "logical_count", f"has {a.shape[1]} layers; moe_layers lists {max(moe_layers)}")
    if experts is not None and a.shape[2] != experts:
        raise fail(path, "logical_count", f"has {a.shape[2]} logical experts, the config says "
                                          f"experts={experts}")
    hf.ring_order(a.any(axis=(1, 2)), ring_start, path, "logical_count")  # which rows SGLang's ring wrote


def _sglang_records(path: Path, fields: tuple[str, ...], mode: str, *, ep_size: int | None, map_path: str | None,
                    experts: int | None, moe_layers: tuple[int, ...] | None) -> None:
    dump = None
    for dump, rf in sglang_dumps.scan(path, ep_size=ep_size, fields=fields, mode=mode,
                                      map_path=map_path, experts=experts, mmap=True):
        L, P = dump.p2l.shape
        r = rf.records[0]  # the shape of each file's first record (memory-mapped: nothing is read)
        a = as_array(r.data[fields[0]], r.path, r.where(fields[0]), "iuf")
        if a.shape[:1] != (L,) or (mode == "per_pass" and a.shape != (L, P)):
            raise fail(r.path, r.where(fields[0]), f"has shape {tuple(a.shape)}, expected {L} layers"
                                                  + (f" x {P} physical experts" if mode == "per_pass" else ""))
        del rf, r, a
    assert dump is not None  # scan raises on a dump without records
    L = dump.p2l.shape[0]
    if moe_layers is not None and max(moe_layers) >= L:
        raise fail(dump.map_source, "moe_layers", f"lists layer {max(moe_layers)}; the dump has {L} layers")


def _trtllm(path: Path, ep_size: int | None, experts: int | None, top_k: int | None, map_path: str | None) -> None:
    """Each rank file's header parsed once: shapes and dtypes from it, the key grid by set operations."""
    meta, ranks = layout.trtllm_files(path, ep_size)
    E, _ = hf.read_trtllm_meta(meta, experts, top_k, slots=map_path is not None)
    headers = hf.trtllm_headers(ranks, E, meta.name)
    _, layers, _, _ = hf.trtllm_grid({f: h.names for f, h in headers.items()})
    if map_path is not None:
        hf.trtllm_slot_map(map_path, E, layers, experts, meta)


def _vllm(path: Path, map_path: str | None, experts: int | None) -> None:
    m = _map(map_path, experts)
    assert m is not None  # required by the spec
    if path.suffix == ".safetensors":
        h = safetensors_header(layout.need_file(path, "vLLM expert_load_window"))
        if hf.WINDOW_KEY not in h.names:
            raise fail(path, hf.WINDOW_KEY, f"missing; the file has keys {sorted(h.names)}")
        shape = h.shape_of(hf.WINDOW_KEY)
    else:
        shape = tuple(hf.load_vllm_window(path, mmap=True).shape)
    if len(shape) != 3 or shape[1:] != m[0].shape:
        raise fail(path, hf.WINDOW_KEY, f"has shape {shape}, expected [window, {m[0].shape[0]} layers, "
                                        f"{m[0].shape[1]} physical] (the map's shape)")


def _routed(path: Path, map_path: str | None, experts: int | None) -> None:
    path = layout.need_file(path, "JSON-lines of SGLang responses")
    _map(map_path, experts)
    with path.open() as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise fail(path, f"line {lineno}", f"not valid JSON ({exc})") from None
                meta = obj.get("meta_info") if isinstance(obj, dict) else None
                if not isinstance(meta, dict) or not isinstance(meta.get("routed_experts"), str):
                    raise fail(path, f"line {lineno}: meta_info.routed_experts",
                               "missing or not a base64 string (was the request sent with return_routed_experts?)")
                return
    raise fail(path, "", "no response lines")


def _flame(path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows: tuple[Path, int] | None = None
    for f in layout.flame_files(path).values():
        try:
            pf = pq.ParquetFile(f)
        except (pa.ArrowInvalid, OSError) as exc:
            raise fail(f, "", f"not a readable parquet file ({exc})") from None
        schema = pf.schema_arrow
        for col in ("indices", "scores"):
            if col not in schema.names:
                raise fail(f, col, f"missing column; the file has {schema.names}")
            if not pa.types.is_list(schema.field(col).type) and not pa.types.is_large_list(schema.field(col).type) \
                    and not pa.types.is_fixed_size_list(schema.field(col).type):
                raise fail(f, col, f"expected a list column, got {schema.field(col).type}")
        n = pf.metadata.num_rows
        if rows is None:
            rows = (f, n)
        elif n != rows[1]:
            raise fail(f, "", f"has {n} rows, {rows[0].name} has {rows[1]}: every layer file holds one row per token")


def check(fmt: str, path: Path, *, experts: int | None, top_k: int | None, ep_size: int | None,
          physical_to_logical: str | None, moe_layers: tuple[int, ...] | None, ring_start: int | None = None) -> None:
    """The cheap checks of an import of format ``fmt`` at ``path``, given the spec's other values
    (``ImportSpec.check_files`` first checks that every file the import reads is there)."""
    if fmt == "competition-npy":
        _npy(path, experts)
    elif fmt == "sglang-stat":
        _stat(path, moe_layers, experts, ring_start)
    elif fmt == "sglang-per-pass":
        _sglang_records(path, ("global_physical_count",), "per_pass", ep_size=ep_size, map_path=physical_to_logical,
                        experts=experts, moe_layers=moe_layers)
    elif fmt == "sglang-per-token":
        _sglang_records(path, PER_TOKEN_FIELDS, "per_token", ep_size=ep_size, map_path=physical_to_logical,
                        experts=experts, moe_layers=moe_layers)
    elif fmt == "trtllm-expert-statistic":
        _trtllm(path, ep_size, experts, top_k, physical_to_logical)
    elif fmt == "vllm-expert-load":
        _vllm(path, physical_to_logical, experts)
    elif fmt == "sglang-routed-experts":
        _routed(path, physical_to_logical, experts)
    elif fmt == "flame-moe":
        _flame(path)
    else:
        raise AssertionError(f"no check for {fmt}")  # FORMATS and this dispatch disagree
