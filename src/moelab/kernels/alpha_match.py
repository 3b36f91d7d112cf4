"""Latency-matched alpha (the reference's way of estimating a model's skew), next to the load-matched and
maximum-likelihood ones.

For a captured trace: the bottleneck EP rank's layer time on its workload is compared with the same
measurement on synthetic power-law workloads of the same experts, top-k, concurrency and token count at a
grid of alphas. The latency-matched alpha is where the synthetic latency curve crosses the captured
latency (linear interpolation); the load-matched alpha is where the bottleneck rank's pair count crosses
(deterministic, no timing). Measurements interleave the cases round by round, so drift in the machine's
speed hits every alpha alike."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import torch

from moelab import traces
from moelab.kernels import registry, timing
from moelab.kernels import torch_moe as tm
from moelab.kernels.shapes import MoEShape
from moelab.kernels.workloads import Workload, cut, ep_local
from moelab.synthetic.scenarios import Scenario, StreamSpec, SyntheticSpec, generate


def synthetic_workload(alpha: float, like: Workload, request_length: dict, reference_tokens: int,
                       seed: int) -> Workload:
    """A power-law workload with ``like``'s experts, top-k, concurrency and tokens (one layer, seeded)."""
    need = math.ceil(like.tokens / like.concurrency)
    stream = StreamSpec(like.concurrency, 2 * need + 2, 1, request_length["min"], request_length["max"])
    spec = SyntheticSpec(Scenario("powerlaw", alpha=alpha), like.num_experts, like.top_k, stream, reference_tokens,
                         seed=seed)
    meta, table, _ = generate(spec)
    tr = traces.Trace(meta, pl.from_arrow(table))
    ex = tr.experts_by_layer()
    wt = tr.weights().reshape(ex.shape)
    return cut(ex, wt, trace=spec.trace_id, source_kind="synthetic", source_id=spec.trace_id,
               num_experts=like.num_experts, concurrency=like.concurrency, tokens=[like.tokens], split_fraction=0.5,
               seed=seed)[0]


def crossing(xs: np.ndarray, ys: np.ndarray, target: float) -> float:
    """First x where the piecewise-linear curve (xs ascending) reaches ``target``; nan if it never does."""
    for i in range(len(xs) - 1):
        lo, hi = ys[i], ys[i + 1]
        if min(lo, hi) <= target <= max(lo, hi):
            return float(xs[i] if hi == lo else xs[i] + (target - lo) / (hi - lo) * (xs[i + 1] - xs[i]))
    return float("nan")


def measure(captured: Workload, shape: MoEShape, alphas: list[float], ep: int, *, request_length: dict,
            reference_tokens: int, seed: int, rounds: int, iters: int, draws: int = 4, warmup: int = 2,
            implementation: str = "grouped") -> pl.DataFrame:
    """One row per source: the captured workload, then each alpha averaged over ``draws`` seeded workloads
    (which experts land together on a rank varies from draw to draw as much as alpha does): bottleneck
    pairs and median latency."""
    timing.keep_freed_memory()
    impl = registry.implementations(1.0)[implementation]
    cases = [("captured", float("nan"), captured)]
    cases += [(f"alpha {a:g}", float(a), synthetic_workload(a, captured, request_length, reference_tokens, seed + d))
              for a in alphas for d in range(draws)]
    weights = tm.make_weights(shape.experts // ep, shape.hidden, shape.ffn, shape.activation, dtype=torch.float32,
                              device="cpu", seed=seed)
    g = torch.Generator().manual_seed(seed)
    calls, meta = [], []
    for source, alpha, w in cases:
        loc = ep_local(w, ep)
        x = torch.randn(loc.rows.size, shape.hidden, generator=g)
        ids, wts = torch.from_numpy(loc.ids), torch.from_numpy(loc.weights)
        calls.append(lambda x=x, ids=ids, wts=wts: impl(x, ids, wts, weights))
        meta.append({"source": source, "alpha": alpha, "bottleneck_pairs": loc.pairs,
                     "rank_imbalance": float(loc.rank_pairs.max() / loc.rank_pairs.mean()),
                     "expert_imbalance": float(w.loads().max() / w.loads().mean())})
    samples = [[] for _ in calls]
    for _ in range(rounds):  # round-robin: every case sees the same machine state
        for i, call in enumerate(calls):
            samples[i].extend(timing.measure(call, "cpu", warmup, iters)[0])
    per_draw = pl.DataFrame([{**m, "latency_p50_ms": float(np.median(s)),
                              "latency_p95_ms": float(np.percentile(s, 95))} for m, s in zip(meta, samples)])
    info = timing.device_info("cpu")
    return (per_draw.group_by("source", "alpha", maintain_order=True)
            .agg(pl.len().alias("draws"), pl.col("bottleneck_pairs", "rank_imbalance", "expert_imbalance",
                                                  "latency_p50_ms", "latency_p95_ms").mean())
            .with_columns(device_kind=pl.lit(info["device_kind"]), device_name=pl.lit(info["device_name"])))


def summarise(rows: pl.DataFrame, mle_alpha: float) -> dict:
    syn = rows.filter(pl.col("source") != "captured").sort("alpha")
    cap = rows.filter(pl.col("source") == "captured").row(0, named=True)
    a = syn["alpha"].to_numpy()
    return {"latency_matched_alpha": crossing(a, syn["latency_p50_ms"].to_numpy(), cap["latency_p50_ms"]),
            "load_matched_alpha": crossing(a, syn["bottleneck_pairs"].to_numpy().astype(float),
                                           float(cap["bottleneck_pairs"])),
            "mle_alpha": mle_alpha, "captured_latency_p50_ms": cap["latency_p50_ms"],
            "captured_bottleneck_pairs": cap["bottleneck_pairs"]}
