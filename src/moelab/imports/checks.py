"""``ImportSpec.check_files``: what can be checked before any job without reading the data.

Headers only where the container allows it (npy header through a memory map, the safetensors header parsed
once per file, with the TensorRT-LLM key grid checked by set operations, parquet schemas and row counts,
``meta_info.json``); torch.save dumps are opened with memory-mapped tensors, one rank file at a time, so their
structure (keys, ranks, records) is checked without reading the arrays.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from moelab.imports import hotness_formats as hf
from moelab.imports import layout, sglang_dumps
from moelab.imports.errors import fail
from moelab.imports.loaders import as_array, check_map, load_map_file, safetensors_header, torch_load
from moelab.imports.sglang_dumps import PER_TOKEN_FIELDS

if TYPE_CHECKING:
    from moelab.imports.spec import ImportSpec


def _map(spec: "ImportSpec") -> tuple[np.ndarray, int] | None:
    if spec.physical_to_logical is None:
        return None
    return check_map(load_map_file(spec.physical_to_logical), spec.physical_to_logical, "physical_to_logical",
                     spec.experts)


def _npy(spec: "ImportSpec") -> None:
    path = layout.need_file(Path(spec.path), "competition .npy hotness")
    try:
        a = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise fail(path, "", f"not a readable .npy array ({exc})") from None
    if a.ndim != 3 or a.dtype.kind not in "iuf":
        raise fail(path, "", f"expected a numeric [iterations, layers, experts] array, got shape {a.shape} "
                             f"dtype {a.dtype}")
    if spec.experts is not None and a.shape[2] != spec.experts:
        raise fail(path, "experts axis", f"has {a.shape[2]} experts, the config says experts={spec.experts}")


def _stat(spec: "ImportSpec") -> None:
    path = Path(spec.path)
    d = torch_load(path, mmap=True)
    if not isinstance(d, dict) or "logical_count" not in d:
        raise fail(path, "logical_count", "missing: expected an SGLang stat-mode dump (a dict with logical_count)")
    a = as_array(d["logical_count"], path, "logical_count")
    if a.ndim != 3:
        raise fail(path, "logical_count", f"expected [passes, layers, logical experts], got shape {tuple(a.shape)}")
    if spec.moe_layers is not None and max(spec.moe_layers) >= a.shape[1]:
        raise fail(path, "logical_count", f"has {a.shape[1]} layers; moe_layers lists {max(spec.moe_layers)}")
    if spec.experts is not None and a.shape[2] != spec.experts:
        raise fail(path, "logical_count", f"has {a.shape[2]} logical experts, the config says "
                                          f"experts={spec.experts}")


def _sglang_records(spec: "ImportSpec", fields: tuple[str, ...], mode: str) -> None:
    dump = None
    for dump, rf in sglang_dumps.scan(spec.path, ep_size=spec.ep_size, fields=fields, mode=mode,
                                      map_path=spec.physical_to_logical, experts=spec.experts, mmap=True):
        L, P = dump.p2l.shape
        r = rf.records[0]  # the shape of each file's first record (memory-mapped: nothing is read)
        a = as_array(r.data[fields[0]], r.path, r.where(fields[0]), "iuf")
        if a.shape[:1] != (L,) or (mode == "per_pass" and a.shape != (L, P)):
            raise fail(r.path, r.where(fields[0]), f"has shape {tuple(a.shape)}, expected {L} layers"
                                                  + (f" x {P} physical experts" if mode == "per_pass" else ""))
        del rf, r, a
    assert dump is not None  # scan raises on a dump without records
    L = dump.p2l.shape[0]
    if spec.moe_layers is not None and max(spec.moe_layers) >= L:
        raise fail(dump.map_source, "moe_layers", f"lists layer {max(spec.moe_layers)}; the dump has {L} layers")


def _trtllm(spec: "ImportSpec") -> None:
    """Each rank file's header parsed once: shapes and dtypes from it, the key grid by set operations."""
    meta, ranks = layout.trtllm_files(Path(spec.path), spec.ep_size)
    E, _ = hf.read_trtllm_meta(meta, spec.experts, spec.top_k)
    headers = hf.trtllm_headers(ranks, E, meta.name)
    hf.trtllm_grid({f: h.names for f, h in headers.items()})


def _vllm(spec: "ImportSpec") -> None:
    path = Path(spec.path)
    m = _map(spec)
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


def _routed(spec: "ImportSpec") -> None:
    path = layout.need_file(Path(spec.path), "JSON-lines of SGLang responses")
    _map(spec)
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


def _flame(spec: "ImportSpec") -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows: tuple[Path, int] | None = None
    for f in layout.flame_files(Path(spec.path)).values():
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


CHECKS = {
    "competition-npy": _npy,
    "sglang-stat": _stat,
    "sglang-per-pass": lambda s: _sglang_records(s, ("global_physical_count",), "per_pass"),
    "sglang-per-token": lambda s: _sglang_records(s, PER_TOKEN_FIELDS, "per_token"),
    "trtllm-expert-statistic": _trtllm,
    "vllm-expert-load": _vllm,
    "sglang-routed-experts": _routed,
    "flame-moe": _flame,
}


def check(spec: "ImportSpec") -> None:
    spec.files()  # every expected file is there (rank files, meta_info.json, the map)
    for f in spec.files():
        layout.need_file(Path(f), "listed by the import")
    CHECKS[spec.format](spec)
