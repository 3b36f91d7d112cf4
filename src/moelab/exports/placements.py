"""The pipeline's placements as the files serving engines load (``docs/stages/exports.md``).

Static placements (a device per expert, per layer, device count and policy) and dynamic runs (each policy's
starting deployment and every layer switch) become, per placement: SGLang's ``--init-expert-location`` JSON,
TensorRT-LLM's load-balancer YAML and a vLLM-style ``physical_to_logical_map`` tensor; a dynamic run also
gets its whole redeployment sequence as JSON lines. Every file is checked against the engines' constraints
as it is written (the format modules of :mod:`moelab.exports`) and read back here to the identical map before
the job ends.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import polars as pl

from moelab.exports.maps import ExportError, from_static
from moelab.exports.redeployments import read_redeployments, replay, write_redeployments
from moelab.exports.sglang import read_sglang, write_sglang
from moelab.exports.trtllm import read_trtllm, write_trtllm
from moelab.exports.vllm import read_vllm, write_vllm

ENGINES = ("sglang.json", "trtllm.yaml", "vllm.pt")


def _decoder_layers(rows: pl.DataFrame) -> list[int]:
    """Each MoE layer's decoder-layer index (rows sorted by ``layer``; without the column: the MoE ordinal)."""
    col = "decoder_layer" if "decoder_layer" in rows.columns else "layer"
    return [int(x) for x in rows.sort("layer")[col]]


def slug(name: str) -> str:
    """A file-name-safe form of a policy name ("DS-EPLB hierarchical" -> "ds-eplb-hierarchical")."""
    return re.sub(r"[^a-z0-9.]+", "-", name.lower()).strip("-")


def write_map(folder: Path, stem: str, p2l: np.ndarray, num_experts: int, ep_size: int,
               layers: list[int]) -> list[str]:
    """One placement in each engine's file, each read back to ``p2l`` (a mismatch is a bug: raise).
    ``layers``: each MoE row's decoder layer, which SGLang and TensorRT-LLM index by (vLLM: MoE rows only)."""
    paths = {e: folder / f"{stem}.{e}" for e in ENGINES}
    write_sglang(paths["sglang.json"], p2l, ep_size=ep_size, num_experts=num_experts, layers=layers)
    write_trtllm(paths["trtllm.yaml"], p2l, ep_size, num_experts=num_experts, layers=layers)
    write_vllm(paths["vllm.pt"], p2l, ep_size=ep_size, num_experts=num_experts)
    back = {"sglang.json": read_sglang(paths["sglang.json"], num_experts=num_experts, layers=layers),
            "trtllm.yaml": read_trtllm(paths["trtllm.yaml"], num_experts=num_experts)[0],
            "vllm.pt": read_vllm(paths["vllm.pt"], num_experts=num_experts)}
    for engine, got in back.items():
        if not np.array_equal(got, p2l):
            raise ExportError(f"{paths[engine]}: reads back to a different placement")
    return [p.name for p in paths.values()]


def static_files(placements: pl.DataFrame, folder: str | Path) -> pl.DataFrame:
    """Every static placement of one trace (rows: layer, devices, policy, cv_budget, device [E]) in the
    engines' files under ``folder``: ``D{devices}-{policy}[-cv{budget}].*``. Returns the manifest."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    E = int(placements["num_experts"][0])
    rows = []
    keys = ["devices", "policy", "cv_budget"]
    for (D, policy, budget), g in placements.sort("layer").group_by(keys, maintain_order=True):
        stem = f"D{D}-{slug(policy)}" + ("" if budget is None else f"-cv{budget:g}")
        device = np.array(g["device"].to_list(), dtype=np.int64)  # [L, E]
        p2l = from_static(device, D)
        files = write_map(folder, stem, p2l, E, int(D), _decoder_layers(g))
        rows.append({"kind": "static", "devices": int(D), "policy": policy, "cv_budget": budget,
                     "layers": p2l.shape[0], "physical": p2l.shape[1], "redeployments": 0,
                     "filled_slots_start": 0, "filled_slots_changes": 0, "filled_slots_final": 0, "files": files})
    return pl.DataFrame(rows, schema_overrides={"cv_budget": pl.Float64})


def complete(slots: np.ndarray, num_experts: int) -> tuple[np.ndarray, int]:
    """A map an engine can load, and how many slots it had to fill. The simulator allows an empty slot (-1:
    it serves no load): Default leaves its redundant slots empty, and moelab's policy, which moves at most
    ``max_moves`` slots per call, may not fill them all. An engine has no empty slot, so each gets the
    engines' own trivial filling (physical slot p holds expert p mod E). That copy takes a share of its
    expert's tokens in the engine, so wherever slots were filled the engine's load split differs from the
    scored one: the manifest counts them."""
    out = np.array(slots, dtype=np.int64)
    empty = out < 0
    filler = np.broadcast_to(np.arange(out.shape[-1]) % num_experts, out.shape)
    out[empty] = filler[empty]
    return out, int(empty.sum())


def dynamic_files(redeployments: pl.DataFrame, folder: str | Path) -> pl.DataFrame:
    """Each dynamic policy's final deployment in the engines' files, and its whole sequence of redeployments
    as JSON lines, under ``folder``: ``{policy}.*`` and ``{policy}.redeployments.jsonl``. Returns the manifest."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    E = int(redeployments["num_experts"][0])
    rows = []
    for (policy,), g in redeployments.group_by(["policy"], maintain_order=True):
        D, S = int(g["devices"][0]), int(g["slots_per_device"][0])
        start = g.filter(pl.col("iteration") < 0).sort("layer")
        simulated_start = np.array(start["slots"].to_list(), dtype=np.int64)
        simulated = [(int(i), int(layer), np.array(s, dtype=np.int64))  # in the order the layers switched
                     for i, layer, s in g.filter(pl.col("iteration") >= 0)
                     .select("iteration", "layer", "slots").iter_rows()]
        initial, filled_start = complete(simulated_start, E)
        changes, filled = [], 0
        for i, layer, slots in simulated:
            row, n = complete(slots, E)
            changes.append((i, layer, row))
            filled += n
        stem = slug(policy)
        seq = folder / f"{stem}.redeployments.jsonl"
        decoder = _decoder_layers(start)
        write_redeployments(seq, initial, changes, D, num_experts=E, layers=decoder)
        got_initial, got_changes, got_layers = read_redeployments(seq, with_layers=True)
        final = replay(initial, changes, np.iinfo(np.int64).max)
        filled_final = int((replay(simulated_start, simulated, np.iinfo(np.int64).max) < 0).sum())
        same = (got_layers == decoder and np.array_equal(got_initial, initial) and len(got_changes) == len(changes)
                and np.array_equal(replay(got_initial, got_changes, np.iinfo(np.int64).max), final))
        if not same:
            raise ExportError(f"{seq}: reads back to a different sequence")
        files = write_map(folder, stem, final, E, D, decoder) + [seq.name]
        rows.append({"kind": "dynamic", "devices": D, "policy": policy, "cv_budget": None,
                     "layers": final.shape[0], "physical": D * S, "redeployments": len(changes),
                     "filled_slots_start": filled_start, "filled_slots_changes": filled,
                     "filled_slots_final": filled_final, "files": files})
    return pl.DataFrame(rows, schema_overrides={"cv_budget": pl.Float64})
