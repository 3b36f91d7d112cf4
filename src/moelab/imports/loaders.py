"""Reading the containers users' dumps come in (torch.save, safetensors, .npy, JSON), and the
physical-to-logical expert map that turns physical slots (replicas) into logical experts.

Every reader turns a container problem into an ImportFileError naming the file and the field.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np

from moelab.hotness import HotnessError, validate
import moelab.imports.torch_zip as torch_zip
from moelab.imports.errors import ImportFileError, fail
from moelab.imports.layout import need_file


def torch_load(path: Path, *, mmap: bool = False) -> Any:
    """``torch.load`` of plain data only (``weights_only``: a dump never runs code). ``mmap`` maps tensor
    storage without reading it (the cheap checks): read without torch where the file allows
    (:mod:`moelab.imports.torch_zip`, tensors as numpy memory maps), else by torch; files in torch's legacy
    format fall back to a full read."""
    need_file(path, "torch.save file")
    if mmap:
        try:
            return torch_zip.read(path)
        except Exception:  # noqa: BLE001 - anything it does not map, or a bad file: torch reads it or says why
            pass
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad or legacy file
        if mmap:
            return torch_load(path, mmap=False)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise fail(path, "", f"truncated or corrupt: not a readable torch.save file ({path.stat().st_size} bytes; "
                             f"torch says {type(exc).__name__}: {first[:200]})") from None


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


def raw_counts(x: Any, path: Path, field: str, ndim: int, shape_names: str) -> np.ndarray:
    """Non-negative finite counts of rank ``ndim`` in their own dtype (integers stay integers: no copy)."""
    a = as_array(x, path, field)
    if a.ndim != ndim:
        raise fail(path, field, f"expected {shape_names}, got rank {a.ndim} (shape {tuple(a.shape)})")
    check_counts(a, path, field)
    return a


def check_counts(a: np.ndarray, path: Path, field: str) -> None:
    """Finite and non-negative, or an ImportFileError naming the first bad index."""
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise fail(path, field, f"holds NaN or infinite values (first at index "
                                f"{np.argwhere(~np.isfinite(a))[0].tolist()}); expected counts")
    if a.dtype.kind in "if" and (a < 0).any():
        raise fail(path, field, f"holds negative values (first at index {np.argwhere(a < 0)[0].tolist()}); "
                                f"expected counts >= 0")


def counts(x: Any, path: Path, field: str, ndim: int, shape_names: str) -> np.ndarray:
    """Non-negative finite counts of rank ``ndim`` as float64 (exact for integers below 2^53)."""
    return raw_counts(x, path, field, ndim, shape_names).astype(np.float64)


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


def load_slot_map(path: str | Path) -> tuple[np.ndarray, list[int] | None]:
    """A slot map ``[layers, slots]`` and, from TensorRT-LLM's ``MoeLoadBalancerConfig`` YAML (``.yaml``:
    ``initial_global_assignments``, ``{layer id: [expert per slot]}``), the layer id of each row (sorted);
    any other map file (:func:`load_map_file`) gives rows with no ids. A YAML whose balancer moves experts
    (``layer_updates_per_iter`` > 0) is refused: a slot then holds different experts over time, and which one
    at each iteration is not in any file."""
    path = Path(path)
    if path.suffix not in (".yaml", ".yml"):
        return load_map_file(path), None
    import yaml

    need_file(path, "TensorRT-LLM load-balancer YAML")
    try:
        data = yaml.safe_load(path.read_text())
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise fail(path, "", f"not readable YAML ({exc})") from None
    field = "initial_global_assignments"
    assign = data.get(field) if isinstance(data, dict) else None
    if not isinstance(assign, dict) or not assign or any(isinstance(k, bool) or not isinstance(k, int)
                                                         for k in assign):
        raise fail(path, field, "expected a mapping of layer ids to lists of expert ids (TensorRT-LLM's "
                                "MoeLoadBalancerConfig)")
    updates = data.get("layer_updates_per_iter", 0)
    if updates:
        raise fail(path, "layer_updates_per_iter", f"is {updates!r}: the load balancer moved experts between "
                                                   f"slots while recording, so a slot id means different experts "
                                                   f"at different iterations and the statistic cannot be mapped "
                                                   f"back; record with layer_updates_per_iter: 0 (a static "
                                                   f"placement) or without the load balancer")
    keys = sorted(assign)
    rows = [assign[k] for k in keys]
    if any(not isinstance(r, list) or len(r) != len(rows[0]) for r in rows):
        raise fail(path, field, "expected one list of the same length (num_slots) per layer")
    m = as_array(rows, path, field, "iu")
    slots = data.get("num_slots")
    if slots is not None and slots != m.shape[1]:
        raise fail(path, field, f"lists have {m.shape[1]} slots, num_slots is {slots!r}")
    return m, keys


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
    """``[..., layers, physical]`` counts -> ``[..., layers, E]`` float64 logical counts, replicas summed.

    One layer at a time, through a 0/1 matrix: exact for integer counts below 2^53 (each product is a count
    or 0, each sum an integer), and the only array as large as the input is the output."""
    L, P = p2l.shape
    lead = physical.shape[:-2]
    flat = physical.reshape(-1, L, P)
    out = np.zeros((flat.shape[0], L, E))
    for ly in range(L):
        onehot = np.zeros((P, E))
        onehot[np.arange(P), p2l[ly]] = 1.0
        out[:, ly] = flat[:, ly].astype(np.float64) @ onehot
    return out.reshape(*lead, L, E)


def pick_layers(a: np.ndarray, axis: int, moe_layers: tuple[int, ...] | None, path: Path, field: str) -> np.ndarray:
    """Keep the configured MoE layers (decoder-layer indices) along ``axis``; all of them when unset."""
    if moe_layers is None:
        return a
    n = a.shape[axis]
    if max(moe_layers) >= n:
        raise fail(path, field, f"has {n} layers; moe_layers lists layer {max(moe_layers)} (expected indices "
                                f"below {n})")
    return np.take(a, list(moe_layers), axis=axis)


# --- safetensors headers ------------------------------------------------------------------------------------

# safetensors dtype names -> numpy (little-endian); BF16 and the float8 types have no numpy dtype
ST_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
             "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?"}
MAX_HEADER = 1 << 30  # a sanity bound on the header length (safetensors itself allows 100 MB)


@dataclass(frozen=True)
class SafetensorsHeader:
    """A safetensors file's header, by column: tensor names, their dtype codes (``"I32"``), shapes (as
    ``"61,288"``: comma-joined, ``""`` for a scalar) and ``[tensors, 2]`` (begin, end) byte offsets relative to
    ``data_start``, the byte after the header; nothing of the data is read."""

    path: Path
    names: list[str]
    dtype_codes: np.ndarray
    shape_codes: np.ndarray
    offsets: np.ndarray
    data_start: int
    data_size: int

    def dtypes(self) -> set[str]:
        return set(np.unique(self.dtype_codes).tolist())

    def shapes(self) -> set[tuple[int, ...]]:
        return {_shape(c) for c in np.unique(self.shape_codes).tolist()}

    def shape_of(self, name: str) -> tuple[int, ...]:
        return _shape(str(self.shape_codes[self.names.index(name)]))

    def dtype_of(self, name: str) -> str:
        return str(self.dtype_codes[self.names.index(name)])


def _shape(code: str) -> tuple[int, ...]:
    return tuple(int(x) for x in code.split(",")) if code else ()


# one header entry as the safetensors library writes it (compact JSON, its key order, a name without escapes)
_ENTRY = re.compile(rb'"([^"\\]*)":\{"dtype":"([A-Z0-9]+)","shape":\[([0-9,]*)\],'
                    rb'"data_offsets":\[([0-9]+),([0-9]+)\]\}')
_ENTRY_FIXED = len(b'"":{"dtype":"","shape":[],"data_offsets":[,]}')


def _entries_fast(raw: bytes) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray] | None:
    """The entries by one regex pass, when they tile the header exactly (``{`` entry ``,`` ... ``}``, as the
    safetensors library writes it); else None (the caller parses the JSON). ~3x faster than ``json.loads`` on a
    header of 300k tensors, which builds a dict per tensor."""
    found = _ENTRY.findall(raw)
    if not found or raw[:1] != b"{" or raw[-1:] != b"}":
        return None
    a = np.asarray(found)
    matched = int(np.char.str_len(a).sum()) + _ENTRY_FIXED * len(found)
    if matched + len(found) + 1 != len(raw):  # some text no entry matched (metadata, spaces, escapes)
        return None
    try:
        names = a[:, 0].astype(str).tolist()
    except UnicodeDecodeError:
        return None
    return names, a[:, 1].astype(str), a[:, 2].astype(str), a[:, 3:5].astype(np.int64)


def _entries_json(raw: bytes, path: Path) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    bad = "not a readable safetensors file"
    try:
        hdr = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise fail(path, "", f"{bad} (the header is not JSON: {exc})") from None
    if not isinstance(hdr, dict):
        raise fail(path, "", f"{bad} (the header is a JSON {type(hdr).__name__}, expected an object)")
    hdr.pop("__metadata__", None)
    try:
        vals = list(hdr.values())
        dtypes = np.asarray(list(map(itemgetter("dtype"), vals)), dtype=str).reshape(-1)
        shapes = np.asarray([",".join(str(int(x)) for x in v["shape"]) for v in vals], dtype=str).reshape(-1)
        offs = np.asarray(list(map(itemgetter("data_offsets"), vals)), np.int64).reshape(-1, 2)
    except (TypeError, KeyError, ValueError) as exc:
        raise fail(path, "", f"{bad} (a header entry lacks dtype, shape or data_offsets: "
                             f"{type(exc).__name__}: {exc})") from None
    return list(hdr), dtypes, shapes, offs


def safetensors_header(path: Path) -> SafetensorsHeader:
    """Parse a safetensors header: a little-endian u64 length, then that many bytes of JSON mapping each tensor
    name to ``{"dtype", "shape", "data_offsets"}``. No Python work per tensor: one regex pass over the header
    as the safetensors library writes it, ``json.loads`` for any other layout."""
    path = need_file(path, "safetensors file")
    size = path.stat().st_size
    bad = "not a readable safetensors file"
    with path.open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise fail(path, "", f"{bad} ({size} bytes: shorter than the 8-byte header length)")
        n = int.from_bytes(head, "little")
        if n > size - 8 or n > MAX_HEADER:
            raise fail(path, "", f"{bad} (header length {n} runs past the end of the {size}-byte file)")
        raw = fh.read(n).rstrip(b" ")  # the library pads the header with spaces
    names, dtypes, shapes, offs = _entries_fast(raw) or _entries_json(raw, path)
    h = SafetensorsHeader(path, names, dtypes, shapes, offs, 8 + n, size - 8 - n)
    if offs.size and (offs.min() < 0 or offs[:, 1].max() > h.data_size or (offs[:, 1] < offs[:, 0]).any()):
        raise fail(path, "", f"{bad} (data offsets outside its {h.data_size}-byte data section: truncated?)")
    return h


def st_dtype(path: Path, code: str, name: str) -> np.dtype:
    """The numpy dtype of a safetensors dtype code (``name``: a tensor that has it), refusing what cannot hold
    counts."""
    if code not in ST_DTYPES or code == "BOOL":
        raise fail(path, repr(name), f"has dtype {code}, expected integer or float counts "
                                     f"({sorted(set(ST_DTYPES) - {'BOOL'})})")
    return np.dtype(ST_DTYPES[code])
