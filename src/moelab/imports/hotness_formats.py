"""Readers of the hotness formats: per-iteration expert counts ``[iterations, layers, logical experts]``.

Each returns validated float64 logical counts. Physical layouts (replicas of an expert on several slots) are
summed per logical expert through a physical-to-logical map; per-rank files are summed over ranks (see the
per-format notes for why that is the right combination).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

import moelab.imports.layout as layout
import moelab.imports.sglang_dumps as sglang_dumps
from moelab.imports.errors import DENSE_HINT, fail
from moelab.imports.loaders import (ST_DTYPES, SafetensorsHeader, as_array, check_map, checked_hotness, counts,
                                    load_map_file, load_slot_map, pick_layers, raw_counts, safetensors_header,
                                    st_dtype, to_logical, torch_load)



def dense_layers(a: np.ndarray, path: str | Path, field: str) -> None:
    """Refuse layers that count zero in every pass ``a`` ``[passes, layers, experts]`` holds: SGLang indexes
    every decoder layer and a dense one counts nothing; kept, it would look perfectly balanced later."""
    zero = np.flatnonzero(~a.any(axis=(0, 2)))
    if zero.size:
        every = " (every layer: was anything recorded?)" if zero.size == a.shape[1] else ""
        raise fail(path, field, f"decoder layer(s) {zero.tolist()} counted no token in any forward pass{every}: "
                                f"dense layers; {DENSE_HINT}")


def _check_experts(E: int, experts: int | None, path: Path, field: str) -> None:
    if experts is not None and E != experts:
        raise fail(path, field, f"has {E} logical experts, the config says experts={experts}")


# --- the placement competition ------------------------------------------------------------------------------

def read_npy(path: str | Path, *, experts: int | None = None) -> np.ndarray:
    """The competition's ``.npy`` ``[iterations, layers, experts]``, values as they are (it already replaced
    zeros by 1; nothing is undone or redone here)."""
    path = layout.need_file(Path(path), "competition .npy hotness")
    try:
        hot = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise fail(path, "", f"not a readable .npy array ({exc})") from None
    hot = checked_hotness(hot, path)
    _check_experts(hot.shape[2], experts, path, "experts axis")
    return hot


# --- SGLang stat mode ---------------------------------------------------------------------------------------

def _zero_runs(written: np.ndarray) -> list[tuple[int, int]]:
    """The cyclic runs of unwritten rows as (first row, length), in row order."""
    R = written.size
    runs: list[tuple[int, int]] = []
    i = 0
    while i < R:
        if written[i]:
            i += 1
            continue
        j = i
        while j < R and not written[j]:
            j += 1
        runs.append((i, j - i))
        i = j
    if len(runs) > 1 and runs[0][0] == 0 and runs[-1][0] + runs[-1][1] == R:  # the run wraps past the end
        first, last = runs.pop(0), runs.pop()
        runs.append((last[0], last[1] + first[1]))
    return runs


def ring_order(written: np.ndarray, ring_start: int | None, path: Path, field: str) -> tuple[np.ndarray, dict]:
    """The rows of SGLang's stat buffer in the order they were written, unwritten rows left out.

    SGLang keeps stat mode's per-pass counts in a ring of ``--expert-distribution-recorder-buffer-size`` rows
    (1000 unless set, or ``eplb_rebalance_num_iterations``): row ``i % size`` holds pass ``i``, and the dump
    writes the whole ring, zeros where nothing was written yet, with no note of where it was writing. So the
    unwritten rows are the all-zero ones; the written block starts after them (a reset zeroes the ring but
    keeps the write position, so the block need not start at row 0). A ring with every row written may have
    wrapped: its oldest row is then unknown, and ``ring_start`` (the row of the oldest pass: the passes
    recorded mod the size; 0 when it never wrapped or the buffer was unbounded, size -1) must say so.
    Returns the row order and what was read, for the import's metadata."""
    R = written.size
    if not written.any():
        raise fail(path, field, f"none of its {R} rows counts a token: nothing was recorded")
    if ring_start is not None:
        if not 0 <= ring_start < R:
            raise fail(path, field, f"has {R} rows; ring_start={ring_start} is outside 0..{R - 1}")
        order = np.roll(np.arange(R), -ring_start)
        if not written[order[0]]:
            raise fail(path, field, f"row {ring_start} (ring_start) was never written (it counts no token); "
                                    f"expected the row of the oldest recorded pass")
        w = written[order]
        n = R - int(np.argmax(w[::-1]))  # the rows after the last written one were never written
        return order[:n], {"ring_rows": R, "ring_start": ring_start, "ring_start_from": "config ring_start",
                           "passes": n}
    runs = _zero_runs(written)
    if not runs:
        raise fail(path, field, f"every one of its {R} rows is written, so SGLang's ring buffer may have wrapped, "
                                f"and the dump does not say where it was writing: give ring_start (the row of "
                                f"the oldest pass: passes recorded mod {R}; 0 if it never wrapped or the server ran "
                                f"with --expert-distribution-recorder-buffer-size -1)")
    if len(runs) > 1:
        listed = ", ".join(f"{a}..{(a + n - 1) % R}" for a, n in runs)
        raise fail(path, field, f"has unwritten (all-zero) rows in {len(runs)} places ({listed}); the ring is "
                                f"written in one block, so some are passes that counted nothing: give ring_start "
                                f"(the row of the oldest pass) to say which block is unwritten")
    first, length = runs[0]
    start = (first + length) % R
    order = np.roll(np.arange(R), -start)[:R - length]
    return order, {"ring_rows": R, "ring_start": start, "ring_start_from": "unwritten rows", "passes": R - length}


def read_sglang_stat(path: str | Path, *, moe_layers: tuple[int, ...] | None = None,
                     experts: int | None = None, ring_start: int | None = None,
                     notes: dict | None = None) -> np.ndarray:
    """``logical_count`` ``[passes, layers, logical]``: SGLang already summed it over ranks (an all-reduce at
    dump time, only rank 0 writes). It is a ring buffer (:func:`ring_order`): the unwritten rows are dropped
    and the rest put in the order they were written. ``moe_layers`` drops dense layers (SGLang indexes every
    decoder layer; a dense one counts zero); without it, a layer that counts zero in every pass is refused (a
    dense layer kept would look perfectly balanced). ``notes`` receives how the ring was read."""
    path = Path(path)
    d = torch_load(path, mmap=True)
    if not isinstance(d, dict):
        raise fail(path, "", f"expected a dict (SGLang recorder dump), got {type(d).__name__}")
    if "logical_count" not in d:
        hint = " (a per_pass/per_token dump: use format sglang-per-pass)" if "records" in d else ""
        raise fail(path, "logical_count", f"missing{hint}; the dump has keys {sorted(map(str, d))}")
    hot = counts(d["logical_count"], path, "logical_count", 3, "[forward passes, layers, logical experts]")
    order, ring = ring_order(hot.any(axis=(1, 2)), ring_start, path, "logical_count")
    hot = hot[order]
    if notes is not None:
        notes.update(ring)
    if moe_layers is None:
        dense_layers(hot, path, "logical_count")
    hot = pick_layers(hot, 1, moe_layers, path, "logical_count")
    _check_experts(hot.shape[2], experts, path, "logical_count")
    return checked_hotness(hot, f"{path}: logical_count")


# --- SGLang per_pass mode -----------------------------------------------------------------------------------

def _add_passes(acc: np.ndarray, dump: sglang_dumps.Dump, rf: sglang_dumps.RankFile) -> np.ndarray:
    """Add one rank file's ``global_physical_count`` records into ``acc`` ``[passes, layers, physical]``."""
    L, P = dump.p2l.shape
    row = np.searchsorted(dump.passes, [r.forward_pass_id for r in rf.records])
    for r, i in zip(rf.records, row):
        field = r.where("global_physical_count")
        c = raw_counts(r.data["global_physical_count"], r.path, field, 2, "[layers, physical experts]")
        if c.shape != (L, P):
            raise fail(r.path, field, f"has shape {c.shape}, expected {(L, P)} (the physical-to-logical "
                                      f"map's shape)")
        if acc.dtype.kind != "f":
            if c.dtype.kind == "f" and (c != np.round(c)).any():
                acc = acc.astype(np.float64)  # fractional counts: sum them as floats
            else:
                c = c.astype(np.int64, copy=False)  # whole float or unsigned counts: exact in int64
        acc[i] += c
    return acc


def read_sglang_per_pass(path: str | Path, *, ep_size: int | None = None, map_path: str | None = None,
                         moe_layers: tuple[int, ...] | None = None, experts: int | None = None) -> np.ndarray:
    """Per-rank records of ``global_physical_count`` ``[layers, physical]``, summed over ranks (and gatherer
    keys) per forward pass, passes in ``forward_pass_id`` order, mapped to logical experts.

    Summing over ranks is right: despite its name, a record's ``global_physical_count`` holds only the tokens
    *that rank* routed, laid out over the global physical-expert index space (a rank's own slots, or the whole
    space when counted at expert selection). SGLang's own stat mode all-reduces (sums) the same per-rank counts
    over ranks before it dumps ``logical_count``, so this sum gives what stat mode would have given.

    Streamed: one rank file at a time (memory-mapped), its records added into one ``[passes, layers,
    physical]`` int64 array allocated from the first file's passes, then released; mapped to logical once at
    the end. Without ``moe_layers``, a layer that counts zero in every pass (a dense one) is refused."""
    acc: np.ndarray | None = None
    dump = None
    for dump, rf in sglang_dumps.scan(path, ep_size=ep_size, fields=("global_physical_count",), mode="per_pass",
                                      map_path=map_path, experts=experts):
        L, P = dump.p2l.shape
        if acc is None:
            acc = np.zeros((len(dump.passes), L, P), np.int64)
        acc = _add_passes(acc, dump, rf)
        del rf  # this file's records go before scan opens the next
    assert acc is not None and dump is not None  # scan raises on a dump without records
    if moe_layers is None:
        dense_layers(acc, path, "global_physical_count")
        p2l = dump.p2l
    else:
        if max(moe_layers) >= acc.shape[1]:
            raise fail(dump.map_source, "layers", f"has {acc.shape[1]} layers; moe_layers lists layer "
                                                  f"{max(moe_layers)} (expected indices below {acc.shape[1]})")
        acc, p2l = acc[:, list(moe_layers)], dump.p2l[list(moe_layers)]
    return checked_hotness(to_logical(acc, p2l, dump.experts), path)


# --- TensorRT-LLM expert statistic --------------------------------------------------------------------------

KEY = re.compile(r"^(?P<it>\d+)_(?P<layer>\d+)$")


SLOT_HINT = ("; with the load balancer on, TensorRT-LLM counts slot ids and writes num_slots as num_experts: "
             "give the slot map as physical_to_logical (its MoeLoadBalancerConfig YAML)")


def read_trtllm_meta(path: Path, experts: int | None, top_k: int | None,
                     slots: bool = False) -> tuple[int, int]:
    """(num_experts, num_experts_per_token) from meta_info.json, checked against the config. With ``slots``
    (a slot map was given) num_experts counts slots, not experts, and is checked against the map instead."""
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise fail(path, "", f"not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise fail(path, "", f"expected a JSON object, got {type(meta).__name__}")
    out = []
    for key in ("num_experts", "num_experts_per_token"):
        v = meta.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise fail(path, key, f"expected an integer >= 1, got {v!r}" if key in meta else
                                  f"missing; the file has keys {sorted(meta)}")
        out.append(v)
    if experts is not None and out[0] != experts and not slots:
        raise fail(path, "num_experts", f"is {out[0]}, the config says experts={experts}{SLOT_HINT}")
    if top_k is not None and out[1] != top_k:
        raise fail(path, "num_experts_per_token", f"is {out[1]}, the config says top_k={top_k}")
    return out[0], out[1]


KEYS = re.compile(r"^(\d+)_(\d+)$", re.M)


def trtllm_grid(rank_keys: Mapping[Path, Iterable[str]]) -> tuple[list[int], list[int], list[str], np.ndarray]:
    """Check that every rank file holds the same keys and that they are exactly iterations x layers; return
    the sorted iterations and layers, the keys (sorted) and each key's flat index ``iteration * layers +
    layer`` into the grid. Set operations and one regex pass over all keys: no Python call per key."""
    sets = {f: k if isinstance(k, (set, frozenset)) else set(k) for f, k in rank_keys.items()}
    for f, s in sets.items():
        if not s:
            raise fail(f, "", "holds no '<iteration>_<layer>' tensors")
    first = next(iter(sets.values()))
    same = all(s == first for s in sets.values())
    names = sorted(first if same else set().union(*sets.values()))
    text = "\n".join(names)
    found = KEYS.findall(text)
    if len(found) != len(names) or text.count("\n") != len(names) - 1:
        bad = next(k for k in names if not KEY.match(k) or "\n" in k)
        f = next(f for f, s in sets.items() if bad in s)
        raise fail(f, repr(bad), "expected keys '<iteration>_<layer>'")
    pairs = np.asarray(found).astype(np.int64).reshape(-1, 2)
    its, ii = np.unique(pairs[:, 0], return_inverse=True)
    layers, li = np.unique(pairs[:, 1], return_inverse=True)
    flat = ii.reshape(-1) * len(layers) + li.reshape(-1)
    if np.unique(flat).size != flat.size:  # "01_2" and "1_2"
        order = np.argsort(flat, kind="stable")
        j = order[np.flatnonzero(np.diff(flat[order]) == 0)[0] + 1]
        f = next(f for f, s in sets.items() if names[j] in s)
        raise fail(f, repr(names[j]), "names the same (iteration, layer) as another key")
    if not same or flat.size != its.size * layers.size:
        pos = dict(zip(names, flat.tolist()))
        for f, s in sets.items():
            have = np.zeros(its.size * layers.size, bool)
            have[np.fromiter(map(pos.__getitem__, s), np.int64, len(s))] = True
            if not have.all():
                q = int(np.argmin(have))
                i, ly = int(its[q // layers.size]), int(layers[q % layers.size])
                raise fail(f, f"'{i}_{ly}'", f"missing: expected a count for every iteration {its[0]}..{its[-1]} "
                                            f"and layer {layers.tolist()} found across the rank files")
    return its.tolist(), layers.tolist(), names, flat


def trtllm_headers(ranks: Mapping[int, Path], E: int, meta_name: str = "meta_info.json"
                   ) -> dict[Path, SafetensorsHeader]:
    """Each rank file's safetensors header, every tensor checked to be a count vector of length ``E``."""
    out = {}
    for f in ranks.values():
        h = safetensors_header(f)
        bad = np.flatnonzero(h.shape_codes != str(E))
        if bad.size:
            k = h.names[bad[0]]
            raise fail(f, repr(k), f"has shape {h.shape_of(k)}, expected ({E},) (num_experts in {meta_name})")
        for code in sorted(h.dtypes()):
            st_dtype(f, code, h.names[int(np.argmax(h.dtype_codes == code))])
        out[f] = h
    return out


CHUNK = 1 << 16  # tensors added at a time (bounds the temporary copy)


def _trtllm_add(acc: np.ndarray, h: SafetensorsHeader, flat: np.ndarray, E: int) -> np.ndarray:
    """Add one rank file's vectors into ``acc`` ``[iterations * layers, E]`` at ``flat`` (per tensor, in header
    order). One memory map over the data section when the file has one dtype and whole-row offsets (what
    TensorRT-LLM writes); else a view per tensor."""
    names, offs = h.names, h.offsets
    if len(h.dtypes()) == 1:
        dt = st_dtype(h.path, str(h.dtype_codes[0]), names[0])
        row = E * dt.itemsize
        aligned = (offs[:, 1] - offs[:, 0] == row).all() and not (offs[:, 0] % row).any()
    else:
        aligned = False
    if aligned:
        data = np.memmap(h.path, dtype=dt, mode="r", offset=h.data_start, shape=(h.data_size // row, E))
        rows = offs[:, 0] // row
        get = lambda s, e: data[rows[s:e]]  # noqa: E731
    else:
        raw = np.memmap(h.path, dtype=np.uint8, mode="r", offset=h.data_start, shape=(h.data_size,))
        get = lambda s, e: np.stack([raw[b:en].view(ST_DTYPES[h.dtype_codes[j]]).astype(np.float64)  # noqa: E731
                                     for j, (b, en) in zip(range(s, e), offs[s:e])])
    for s in range(0, len(names), CHUNK):
        v = get(s, s + CHUNK)
        for bad, what in ((~np.isfinite(v) if v.dtype.kind == "f" else None, "NaN or infinite values"),
                          (v < 0 if v.dtype.kind in "if" else None, "negative values")):
            if bad is not None and bad.any():
                j, e = np.argwhere(bad)[0].tolist()
                raise fail(h.path, repr(names[s + j]), f"holds {what} (first at index {e}); expected counts >= 0")
        if acc.dtype.kind != "f":
            if v.dtype.kind == "f" and (v != np.round(v)).any():
                acc = acc.astype(np.float64)  # fractional counts: sum them as floats
            else:
                v = v.astype(np.int64, copy=False)
        acc[flat[s:s + CHUNK]] += v
    return acc


def trtllm_slot_map(map_path: str, slots: int, layers: list[int], experts: int | None,
                    meta_path: Path) -> tuple[np.ndarray, int]:
    """The slot map ``[layers, slots]`` whose rows line up with the statistic's layer ids, checked, and E."""
    m, keys = load_slot_map(map_path)
    if m.ndim != 2 or m.shape[1] != slots:
        raise fail(map_path, "physical_to_logical", f"maps {m.shape[-1] if m.ndim else 0} slots; "
                                                    f"{meta_path} says the statistic counts {slots} (num_experts)")
    if keys is not None:
        pos = {k: i for i, k in enumerate(keys)}
        missing = [ly for ly in layers if ly not in pos]
        if missing:
            raise fail(map_path, "initial_global_assignments", f"has no layer {missing[:8]}, which the statistic "
                                                               f"counts (layer ids {layers[:8]}...)")
        m = m[[pos[ly] for ly in layers]]
    elif m.shape[0] != len(layers):
        raise fail(map_path, "physical_to_logical", f"has {m.shape[0]} layers; the statistic has {len(layers)}")
    return check_map(m, map_path, "physical_to_logical", experts)


def read_trtllm(folder: str | Path, *, ep_size: int | None = None, experts: int | None = None,
                top_k: int | None = None, map_path: str | None = None) -> np.ndarray:
    """``meta_info.json`` plus one ``rank{r}.safetensors`` per rank of bincounts keyed ``"{iteration}_{layer}"``.
    Ranks are summed (each rank counts the tokens it routed; TensorRT-LLM's own load-balancer tooling sums the
    rank files the same way); iterations sorted numerically, layers by their index (the keys' layer ids may be
    decoder-layer indices with dense layers absent: only the ids found become layers).

    Vectorised: each file's header is parsed once and the key grid checked with set operations; each file's
    data section is read through one memory map and added, in chunks of tensors, into one ``[iterations *
    layers, E]`` array."""
    meta_path, ranks = layout.trtllm_files(Path(folder), ep_size)
    E, _ = read_trtllm_meta(meta_path, experts, top_k, slots=map_path is not None)
    headers = trtllm_headers(ranks, E, meta_path.name)
    its, layers, names, flat = trtllm_grid({f: h.names for f, h in headers.items()})
    slot_map = None if map_path is None else trtllm_slot_map(map_path, E, layers, experts, meta_path)
    pos = dict(zip(names, flat.tolist()))
    acc = np.zeros((len(its) * len(layers), E), np.int64)
    for f, h in headers.items():
        keys = h.names
        acc = _trtllm_add(acc, h, np.fromiter(map(pos.__getitem__, keys), np.int64, len(keys)), E)
    hot = acc.reshape(len(its), len(layers), E)
    if slot_map is not None:
        return checked_hotness(to_logical(hot, *slot_map), folder)
    return checked_hotness(hot.astype(np.float64), folder)


# --- vLLM EPLB expert load window ---------------------------------------------------------------------------

WINDOW_KEY = "expert_load_window"


def load_vllm_window(path: Path, *, mmap: bool = False) -> np.ndarray:
    """The raw ``expert_load_window`` from torch.save (a tensor or a dict holding it) or safetensors."""
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        try:
            d = load_file(layout.need_file(path, "vLLM expert_load_window"))
        except Exception as exc:  # noqa: BLE001
            raise fail(path, "", f"not a readable safetensors file ({type(exc).__name__}: {exc})") from None
    else:
        d = torch_load(path, mmap=mmap)
    if isinstance(d, dict):
        if WINDOW_KEY not in d:
            raise fail(path, WINDOW_KEY, f"missing; the file has keys {sorted(map(str, d))}")
        d = d[WINDOW_KEY]
    return as_array(d, path, WINDOW_KEY)


def read_vllm(path: str | Path, *, map_path: str, experts: int | None = None) -> np.ndarray:
    """``expert_load_window`` ``[window, MoE layers, physical]`` mapped to logical experts with the user's
    ``physical_to_logical`` map (replicas summed). vLLM keeps the window as a ring buffer: rows stay in the
    stored order (rotated by vLLM's current step when saved mid-ring); nothing here can undo that."""
    path = Path(path)
    w = counts(load_vllm_window(path), path, WINDOW_KEY, 3, "[window, layers, physical experts]")
    p2l, E = check_map(load_map_file(map_path), map_path, "physical_to_logical", experts)
    if w.shape[1:] != p2l.shape:
        raise fail(path, WINDOW_KEY, f"has [layers, physical] {w.shape[1:]}, the map {map_path} has {p2l.shape}")
    return checked_hotness(to_logical(w, p2l, E), path)
