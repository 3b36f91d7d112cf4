"""Readers of the hotness formats: per-iteration expert counts ``[iterations, layers, logical experts]``.

Each returns validated float64 logical counts. Physical layouts (replicas of an expert on several slots) are
summed per logical expert through a physical-to-logical map; per-rank files are summed over ranks (see the
per-format notes for why that is the right combination).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from moelab.imports import layout, sglang_dumps
from moelab.imports.errors import fail
from moelab.imports.loaders import (as_array, check_map, checked_hotness, counts, load_map_file, pick_layers,
                                    to_logical, torch_load)


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

def read_sglang_stat(path: str | Path, *, moe_layers: tuple[int, ...] | None = None,
                     experts: int | None = None) -> np.ndarray:
    """``logical_count`` ``[passes, layers, logical]``: SGLang already summed it over ranks (an all-reduce at
    dump time, only rank 0 writes), so it is the hotness as is. ``moe_layers`` drops dense layers (SGLang
    indexes every decoder layer; a dense one counts zero)."""
    path = Path(path)
    d = torch_load(path)
    if not isinstance(d, dict):
        raise fail(path, "", f"expected a dict (SGLang recorder dump), got {type(d).__name__}")
    if "logical_count" not in d:
        hint = " (a per_pass/per_token dump: use format sglang-per-pass)" if "records" in d else ""
        raise fail(path, "logical_count", f"missing{hint}; the dump has keys {sorted(map(str, d))}")
    hot = counts(d["logical_count"], path, "logical_count", 3, "[forward passes, layers, logical experts]")
    hot = pick_layers(hot, 1, moe_layers, path, "logical_count")
    _check_experts(hot.shape[2], experts, path, "logical_count")
    return checked_hotness(hot, f"{path}: logical_count")


# --- SGLang per_pass mode -----------------------------------------------------------------------------------

def read_sglang_per_pass(path: str | Path, *, ep_size: int | None = None, map_path: str | None = None,
                         moe_layers: tuple[int, ...] | None = None, experts: int | None = None) -> np.ndarray:
    """Per-rank records of ``global_physical_count`` ``[layers, physical]``, summed over ranks (and gatherer
    keys) per forward pass, passes in ``forward_pass_id`` order, mapped to logical experts.

    Summing over ranks is right: despite its name, a record's ``global_physical_count`` holds only the tokens
    *that rank* routed, laid out over the global physical-expert index space (a rank's own slots, or the whole
    space when counted at expert selection). SGLang's own stat mode all-reduces (sums) the same per-rank counts
    over ranks before it dumps ``logical_count``, so this sum gives what stat mode would have given."""
    dump = sglang_dumps.load(path, ep_size=ep_size, fields=("global_physical_count",), mode="per_pass",
                             map_path=map_path, experts=experts)
    L, P = dump.p2l.shape
    passes: dict[int, np.ndarray] = {}
    for r in dump.records:
        c = counts(r.data["global_physical_count"], r.path, r.where("global_physical_count"), 2,
                   "[layers, physical experts]")
        if c.shape != (L, P):
            raise fail(r.path, r.where("global_physical_count"), f"has shape {c.shape}, expected {(L, P)} "
                                                                  f"(the physical-to-logical map's shape)")
        passes[r.forward_pass_id] = passes.get(r.forward_pass_id, 0) + c
    phys = np.stack([passes[fp] for fp in sorted(passes)])
    hot = to_logical(phys, dump.p2l, dump.experts)
    hot = pick_layers(hot, 1, moe_layers, dump.map_source, "layers")
    return checked_hotness(hot, path)


# --- TensorRT-LLM expert statistic --------------------------------------------------------------------------

KEY = re.compile(r"^(?P<it>\d+)_(?P<layer>\d+)$")


def read_trtllm_meta(path: Path, experts: int | None, top_k: int | None) -> tuple[int, int]:
    """(num_experts, num_experts_per_token) from meta_info.json, checked against the config."""
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
    _check_experts(out[0], experts, path, "num_experts")
    if top_k is not None and out[1] != top_k:
        raise fail(path, "num_experts_per_token", f"is {out[1]}, the config says top_k={top_k}")
    return out[0], out[1]


def trtllm_grid(rank_keys: dict[Path, list[str]]) -> tuple[list[int], list[int]]:
    """Sorted iterations and layers, after checking every rank file holds every (iteration, layer) key."""
    parsed: dict[Path, set[tuple[int, int]]] = {}
    for f, keys in rank_keys.items():
        s = set()
        for k in keys:
            m = KEY.match(k)
            if not m:
                raise fail(f, repr(k), "expected keys '<iteration>_<layer>'")
            s.add((int(m.group("it")), int(m.group("layer"))))
        if not s:
            raise fail(f, "", "holds no '<iteration>_<layer>' tensors")
        parsed[f] = s
    its = sorted({i for s in parsed.values() for i, _ in s})
    layers = sorted({ly for s in parsed.values() for _, ly in s})
    for f, s in parsed.items():
        for i in its:
            for ly in layers:
                if (i, ly) not in s:
                    raise fail(f, f"'{i}_{ly}'", f"missing: expected a count for every iteration {its[0]}..{its[-1]} "
                                                f"and layer {layers} found across the rank files")
    return its, layers


def read_trtllm(folder: str | Path, *, ep_size: int | None = None, experts: int | None = None,
                top_k: int | None = None) -> np.ndarray:
    """``meta_info.json`` plus one ``rank{r}.safetensors`` per rank of bincounts keyed ``"{iteration}_{layer}"``.
    Ranks are summed (each rank counts the tokens it routed; TensorRT-LLM's own load-balancer tooling sums the
    rank files the same way); iterations sorted numerically, layers by their index (the keys' layer ids may be
    decoder-layer indices with dense layers absent: only the ids found become layers)."""
    from safetensors.numpy import load_file

    meta_path, ranks = layout.trtllm_files(Path(folder), ep_size)
    E, _ = read_trtllm_meta(meta_path, experts, top_k)
    data: dict[Path, dict[str, np.ndarray]] = {}
    for f in ranks.values():
        try:
            data[f] = load_file(f)
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
            raise fail(f, "", f"not a readable safetensors file ({type(exc).__name__}: {exc})") from None
    its, layers = trtllm_grid({f: list(d) for f, d in data.items()})
    hot = np.zeros((len(its), len(layers), E))
    li = {ly: j for j, ly in enumerate(layers)}
    ii = {i: j for j, i in enumerate(its)}
    for f, d in data.items():
        for k, v in d.items():
            c = counts(v, f, repr(k), 1, f"a count vector of length num_experts={E}")
            if c.shape != (E,):
                raise fail(f, repr(k), f"has shape {c.shape}, expected ({E},) (num_experts in meta_info.json)")
            i, ly = map(int, k.split("_"))
            hot[ii[i], li[ly]] += c
    return checked_hotness(hot, folder)


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


def read_sglang_dump(path: str | Path) -> np.ndarray:
    """One SGLang dump file of either mode, told apart by its keys (``logical_count``: stat; ``records``:
    per_pass); the records of a single per_pass file may hold several ranks."""
    path = Path(path)
    d = torch_load(path, mmap=True)
    if not isinstance(d, dict):
        raise fail(path, "", f"expected a dict (SGLang recorder dump), got {type(d).__name__}")
    if "logical_count" in d:
        return read_sglang_stat(path)
    if "records" in d:
        return read_sglang_per_pass(path)
    raise fail(path, "", f"neither 'logical_count' (stat mode) nor 'records' (per_pass mode) in the dump; "
                         f"keys: {sorted(map(str, d))}")
