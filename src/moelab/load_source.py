"""What the load statistics and the dynamic placement read: hotness ``[I, L, E]`` and who made it.

A source is a trace (synthetic, captured, proxy, or imported at token level: hotness counted from it) or an
imported hotness (per-iteration expert counts from a serving engine, ``results/imported/<name>/hotness.npy``
with its ``meta.json``). Imported hotness has no tokens: tokens per iteration are known only when the import
names its top-k (counts / k), and the saturation columns, which need a fixed concurrency, stay empty.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from moelab import hotness
from moelab.jobs import atomic_path
from moelab.traces import read_trace


@dataclass(frozen=True)
class LoadSource:
    hot: np.ndarray  # [I, L, E] counts
    source_id: str
    source_kind: str
    num_experts: int
    top_k: int | None
    concurrency: int | None  # tokens per iteration, fixed in a trace; None for imported hotness
    domain: str
    config: dict  # what made it: a trace's config, an import's entry
    layer_index: tuple[int, ...]  # the decoder layer of each MoE row (engines index placements by it)

    def ident(self) -> dict:
        """The columns every per-source table carries."""
        return {"trace": self.source_id, "source_kind": self.source_kind, "num_experts": self.num_experts,
                "top_k": self.top_k, "domain": self.domain,
                "alpha": float(self.config.get("scenario", {}).get("alpha", float("nan")))}


def write_hotness(hot: np.ndarray, meta: dict, hot_path: str | Path, meta_path: str | Path) -> None:
    """An imported hotness and its metadata (source id, format, the files read, shape, top-k)."""
    with atomic_path(hot_path) as tmp:
        with open(tmp, "wb") as f:  # np.save on a path would append .npy to the temporary name
            np.save(f, np.ascontiguousarray(hot, dtype=np.float64), allow_pickle=False)
    with atomic_path(meta_path) as tmp:
        Path(tmp).write_text(json.dumps(meta, sort_keys=True, indent=1) + "\n")


def read(path: str | Path, meta_path: str | Path | None = None) -> LoadSource:
    """A trace parquet, or an imported ``hotness.npy`` (its ``meta.json`` beside it unless given)."""
    path = Path(path)
    if path.suffix == ".parquet":
        trace = read_trace(path)
        m = trace.meta
        return LoadSource(hotness.from_trace(trace), m.source_id, m.source_kind, m.num_experts, m.top_k,
                          m.concurrency, m.domains[0] if len(m.domains) == 1 else "mixed", m.config, m.layer_index)
    meta = json.loads(Path(meta_path or path.with_name("meta.json")).read_text())
    hot = hotness.validate(np.load(path, allow_pickle=False), path)
    config = meta.get("config", {})
    layers = tuple(config.get("moe_layers") or range(hot.shape[1]))  # the rows an import kept are its MoE layers
    return LoadSource(hot, meta["source_id"], "imported", hot.shape[2], meta.get("top_k"), None,
                      meta.get("domain", "imported"), config, layers)
