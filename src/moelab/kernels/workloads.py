"""Kernel workloads cut from a trace: the tokens of consecutive serving iterations and their experts.

A workload is what one MoE layer sees in one forward pass of ``tokens`` tokens: the tokens of
``ceil(tokens / concurrency)`` consecutive iterations of one layer, starting at a seeded random iteration in
the trace's scored part (after ``split_iteration``, so placements fitted on the first part are not scored on
the tokens they were fitted on). Under expert parallelism the layer's latency is the latency of its busiest
rank: :func:`ep_local` cuts out that rank's experts and tokens.

The file format (one parquet per trace) is read with pyarrow alone, so a GPU machine without our
environment can run the benchmark on a workload made elsewhere (``moelab.kernels.standalone``)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

WORKLOAD_VERSION = 1


class WorkloadError(ValueError):
    """A workload that cannot be cut from a trace, or a workload file that breaks its format."""


@dataclass
class Workload:
    """One layer, ``tokens`` consecutive tokens: ``ids``/``weights`` are ``[tokens, k]``.

    ``placements`` maps a placement name to ``{ep_size: rank of each expert [E]}`` (contiguous is implied)."""

    trace: str
    source_kind: str
    source_id: str
    num_experts: int
    top_k: int
    concurrency: int
    tokens: int
    layer: int
    start_iteration: int
    ids: np.ndarray
    weights: np.ndarray
    placements: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)

    def loads(self) -> np.ndarray:
        """Tokens per expert ``[E]``: the group sizes a grouped GEMM sees."""
        return np.bincount(self.ids.ravel(), minlength=self.num_experts)

    def rank_of_expert(self, placement: str, ep: int) -> np.ndarray:
        E = self.num_experts
        if E % ep:
            raise WorkloadError(f"{self.trace}: {E} experts do not split evenly over ep={ep} ranks")
        if placement == "contiguous":
            return np.arange(E) // (E // ep)
        try:
            return self.placements[placement][ep]
        except KeyError:
            raise WorkloadError(f"{self.trace}: no {placement!r} placement for ep={ep} in the workload "
                                f"(it has {sorted(self.placements)})") from None


def start_iteration(n_iterations: int, first: int, need: int, rng: np.random.Generator, trace: str,
                    tokens: int) -> int:
    """A seeded start in ``[first, n_iterations - need]``: never just the first iterations."""
    last = n_iterations - need
    if last < first:
        raise WorkloadError(f"{trace}: {tokens} tokens need {need} iterations, but the scored part has only "
                            f"{n_iterations - first} (iterations {first}..{n_iterations - 1}); lower "
                            f"kernels.tokens or lengthen the trace")
    return int(rng.integers(first, last + 1))


def cut(experts: np.ndarray, weights: np.ndarray, *, trace: str, source_kind: str, source_id: str,
        num_experts: int, concurrency: int, tokens: list[int], split_fraction: float, seed: int,
        placements: dict[str, Callable] | None = None, ep_sizes: Sequence[int] = ()) -> list[Workload]:
    """Workloads for each token count from a trace's ``experts``/``weights`` ``[T, layers, k]``.

    Each token count draws its layer and start iteration from its own seeded stream, so adding a token
    count changes no other workload. ``placements`` maps a name to ``fit(experts_before_split [t, k], ep)
    -> rank of each expert``, fitted on the layer's tokens before the split."""
    T, L, k = experts.shape
    n_it = T // concurrency
    first = int(n_it * split_fraction)
    out = []
    fitted_by_layer: dict[int, dict] = {}  # token counts that draw the same layer share its fitted placements
    for n in tokens:
        rng = np.random.default_rng([seed, n])
        layer = int(rng.integers(L))
        need = math.ceil(n / concurrency)
        s = start_iteration(n_it, first, need, rng, trace, n)
        t0 = s * concurrency
        if layer not in fitted_by_layer:
            fitted_by_layer[layer] = {
                name: {ep: np.asarray(fit(experts[:first * concurrency, layer], ep), dtype=np.int64)
                       for ep in ep_sizes if ep > 1}
                for name, fit in (placements or {}).items()}
        fitted = fitted_by_layer[layer]
        out.append(Workload(trace, source_kind, source_id, num_experts, k, concurrency, n, layer, s,
                            experts[t0:t0 + n, layer].astype(np.int64), weights[t0:t0 + n, layer].astype(np.float32),
                            fitted))
    return out


def write(path: str | Path, workloads: list[Workload]) -> None:
    """One parquet: a row per (workload, token), the case description in the file metadata."""
    if not workloads:
        raise WorkloadError(f"{path}: no workloads to write")
    w0 = workloads[0]
    k = w0.top_k
    cases = [{"tokens": w.tokens, "layer": w.layer, "start_iteration": w.start_iteration,
              "placements": {name: {str(ep): r.tolist() for ep, r in per.items()}
                             for name, per in w.placements.items()}} for w in workloads]
    meta = {"version": WORKLOAD_VERSION, "trace": w0.trace, "source_kind": w0.source_kind,
            "source_id": w0.source_id, "num_experts": w0.num_experts, "top_k": k,
            "concurrency": w0.concurrency, "cases": cases}
    case = np.concatenate([np.full(w.tokens, i, dtype=np.uint32) for i, w in enumerate(workloads)])
    ids = np.concatenate([w.ids for w in workloads]).astype(np.uint16)
    wts = np.concatenate([w.weights for w in workloads]).astype(np.float32)
    table = pa.table({
        "case": pa.array(case),
        "experts": pa.FixedSizeListArray.from_arrays(pa.array(ids.ravel()), k),
        "weights": pa.FixedSizeListArray.from_arrays(pa.array(wts.ravel()), k),
    }).replace_schema_metadata({"moelab.workload": json.dumps(meta, sort_keys=True, separators=(",", ":"))})
    pq.write_table(table, path, compression="zstd")


def read(path: str | Path) -> list[Workload]:
    """Workloads from a file written by :func:`write`; a clear error for anything else."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise WorkloadError(f"{path}: not a readable parquet file ({exc})") from None
    raw = (table.schema.metadata or {}).get(b"moelab.workload")
    if raw is None:
        raise WorkloadError(f"{path}: no moelab.workload metadata (not a workload file)")
    meta = json.loads(raw)
    if meta.get("version") != WORKLOAD_VERSION:
        raise WorkloadError(f"{path}: workload version {meta.get('version')}, expected {WORKLOAD_VERSION}")
    for col in ("case", "experts", "weights"):
        if col not in table.column_names:
            raise WorkloadError(f"{path}: missing column {col!r}")
    k, E = int(meta["top_k"]), int(meta["num_experts"])
    case = table["case"].to_numpy()
    ids = table["experts"].combine_chunks().flatten().to_numpy().reshape(-1, k).astype(np.int64)
    wts = table["weights"].combine_chunks().flatten().to_numpy().reshape(-1, k).astype(np.float32)
    if ids.size and ids.max() >= E:
        raise WorkloadError(f"{path}: expert id {ids.max()} >= num_experts {E}")
    out = []
    for i, c in enumerate(meta["cases"]):
        rows = case == i
        if int(rows.sum()) != int(c["tokens"]):
            raise WorkloadError(f"{path}: case {i} has {int(rows.sum())} rows, expected {c['tokens']} tokens")
        placements = {name: {int(ep): np.asarray(r, dtype=np.int64) for ep, r in per.items()}
                      for name, per in c["placements"].items()}
        out.append(Workload(meta["trace"], meta["source_kind"], meta["source_id"], E, k,
                            int(meta["concurrency"]), int(c["tokens"]), int(c["layer"]),
                            int(c["start_iteration"]), ids[rows], wts[rows], placements))
    return out


@dataclass
class LocalProblem:
    """What one EP rank computes: its tokens (rows of the workload) and their local expert ids (-1 where
    the token's expert lives elsewhere)."""

    rank: int
    rows: np.ndarray  # [t] workload rows that reach this rank
    ids: np.ndarray  # [t, k_local] local expert ids packed left, -1 pads (k_local <= k)
    weights: np.ndarray  # [t, k_local]
    local_experts: np.ndarray  # [E/ep] global ids, in local order
    rank_pairs: np.ndarray  # [ep] (token, expert) pairs per rank: the load the bottleneck is picked by

    @property
    def pairs(self) -> int:
        return int((self.ids >= 0).sum())


def rank_pairs(ids: np.ndarray, rank_of_expert: np.ndarray, ep: int) -> np.ndarray:
    return np.bincount(rank_of_expert[ids].ravel(), minlength=ep)


def ep_local(w: Workload, ep: int, placement: str = "contiguous", rank: int | None = None) -> LocalProblem:
    """The problem of rank ``rank`` (default: the bottleneck, the rank with most token-expert pairs; ties
    to the lowest rank) under ``placement``. ``ep = 1`` is the whole layer."""
    owner = w.rank_of_expert(placement, ep)
    per_rank = rank_pairs(w.ids, owner, ep)
    r = int(np.argmax(per_rank)) if rank is None else int(rank)
    local_experts = np.flatnonzero(owner == r)
    local_index = np.full(w.num_experts, -1, dtype=np.int64)
    local_index[local_experts] = np.arange(local_experts.size)
    lid = local_index[w.ids]
    rows = np.flatnonzero((lid >= 0).any(1))
    lid, wts = lid[rows], w.weights[rows]
    # What the dispatch delivers: each token's local experts packed to the left (weight order kept), as
    # many columns as the token with most local experts needs; -1 pads.
    pack = np.argsort(lid < 0, axis=1, kind="stable")
    lid = np.take_along_axis(lid, pack, axis=1)
    wts = np.take_along_axis(wts, pack, axis=1)
    width = max(1, int((lid >= 0).sum(1).max())) if rows.size else 1
    lid, wts = lid[:, :width], wts[:, :width]
    return LocalProblem(r, rows, lid, np.where(lid >= 0, wts, 0).astype(np.float32), local_experts, per_rank)
