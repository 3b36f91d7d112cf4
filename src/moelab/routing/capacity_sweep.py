"""Capacity-factor sweep: drop rates (exact, deterministic) and pack/combine throughput (timed) on three
kinds of routing.

- ``gaussian``: i.i.d. standard-normal logits, top-k (the public sweep's only source; it makes near-uniform
  routing, which real routers are not), one batch per seed;
- synthetic traces (power-law and the other scenarios) and captured traces, at their own E and k, cut into
  batches of ``batch_tokens // concurrency`` consecutive iterations of one layer. A smaller k is swept as a
  prefix of each token's experts only where the trace's weights are distinct (captured traces): where all
  weights are ``1/k`` (synthetic traces) the column order carries no preference and a prefix would be arbitrary.

Drops follow ``dispatch.py`` (slots first come, first served in token order, a token's choices strongest
first). Load CV and max/mean are of the *requested* loads, before capacity clips them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import numpy as np
import polars as pl

from moelab.routing.dispatch import capacity, drop_metrics, slots_numpy
from moelab.routing.spec import CapacitySpec
from moelab.traces import Trace

log = logging.getLogger(__name__)

SCHEMA = {"source": pl.String, "source_kind": pl.String, "num_experts": pl.Int32, "top_k": pl.Int32,
          "layer": pl.Int32, "batch": pl.Int32, "tokens": pl.Int32, "capacity_factor": pl.Float64,
          "capacity": pl.Int32, "drop_rate": pl.Float64, "token_drop_rate": pl.Float64,
          "load_cv": pl.Float64, "max_mean": pl.Float64}


class SweepError(ValueError):
    pass


def gaussian_experts(num_experts: int, top_k: int, tokens: int, seed: int, draw: int) -> np.ndarray:
    """``[tokens, k]`` top-k of i.i.d. N(0, 1) logits, strongest first (seeded per E, k and draw)."""
    rng = np.random.default_rng([seed, num_experts, top_k, draw])
    logits = rng.standard_normal((tokens, num_experts), dtype=np.float32)
    top = np.argpartition(-logits, top_k - 1, axis=1)[:, :top_k]
    order = np.argsort(-np.take_along_axis(logits, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1)


def _load_stats(experts: np.ndarray, num_experts: int) -> tuple[float, float]:
    loads = np.bincount(experts.reshape(-1).astype(np.int64), minlength=num_experts).astype(np.float64)
    return float(loads.std() / loads.mean()), float(loads.max() / loads.mean())


def batch_rows(experts: np.ndarray, num_experts: int, factors: Sequence[float],
               base: dict) -> list[dict]:
    """One row per capacity factor for one batch of ``[T, k]`` requested experts."""
    T, k = experts.shape
    slot = slots_numpy(experts, num_experts)
    cv, mm = _load_stats(experts, num_experts)
    rows = []
    for cf in factors:
        cap = capacity(cf, T, k, num_experts)
        rows.append(base | {"num_experts": num_experts, "top_k": k, "tokens": T, "capacity_factor": float(cf),
                            "capacity": cap, **drop_metrics(slot, cap), "load_cv": cv, "max_mean": mm})
    return rows


def gaussian_sweep(experts: Sequence[int], top_ks: Sequence[int], factors: Sequence[float],
                   batch_tokens: int, draws: int, seed: int) -> pl.DataFrame:
    rows = []
    for E in experts:
        for k in top_ks:
            if k > E:
                continue
            for d in range(draws):
                ex = gaussian_experts(E, k, batch_tokens, seed, d)
                rows += batch_rows(ex, E, factors, {"source": "gaussian", "source_kind": "gaussian",
                                                    "layer": -1, "batch": d})
    return pl.DataFrame(rows, schema=SCHEMA)


def weights_distinct(trace: Trace) -> bool:
    """True when a token's weights order its experts (a prefix is then a smaller top-k)."""
    w = trace.weights()
    return trace.meta.top_k > 1 and bool((w[:, 0] > w[:, -1]).any())


def trace_top_ks(trace: Trace, top_ks: Sequence[int]) -> list[int]:
    """The k swept on a trace: its own, plus the smaller configured ones where weights are distinct."""
    K = trace.meta.top_k
    smaller = sorted(k for k in set(top_ks) if k < K) if weights_distinct(trace) else []
    return smaller + [K]


def trace_batches(trace: Trace, batch_tokens: int, max_batches: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """(layer, batch, ``[tokens, k]`` experts) for consecutive-iteration batches of every layer."""
    m = trace.meta
    iters = batch_tokens // m.concurrency
    if iters < 1:
        raise SweepError(f"routing.capacity.batch_tokens={batch_tokens} is below the trace's concurrency "
                         f"{m.concurrency} ({m.source_id}): a batch holds whole iterations")
    n = min(trace.n_iterations // iters, max_batches)
    if n < 1:
        raise SweepError(f"trace {m.source_id} has {trace.n_iterations} iterations, fewer than one batch "
                         f"of {iters} (routing.capacity.batch_tokens={batch_tokens})")
    by_layer = trace.experts_by_layer()
    size = iters * m.concurrency
    for layer in range(m.n_moe_layers):
        for b in range(n):
            yield layer, b, by_layer[b * size:(b + 1) * size, layer, :]


def trace_sweep(trace: Trace, source: str, top_ks: Sequence[int], factors: Sequence[float],
                batch_tokens: int, max_batches: int) -> pl.DataFrame:
    m = trace.meta
    ks = trace_top_ks(trace, top_ks)
    rows = []
    for layer, b, ex in trace_batches(trace, batch_tokens, max_batches):
        for k in ks:
            rows += batch_rows(np.ascontiguousarray(ex[:, :k]), m.num_experts, factors,
                               {"source": source, "source_kind": m.source_kind, "layer": layer, "batch": b})
    log.info("%s: k in %s, %d rows", source, ks, len(rows))
    return pl.DataFrame(rows, schema=SCHEMA)


def throughput(cases: Sequence[tuple[str, str, np.ndarray, int]], factors: Sequence[float], hidden: int,
               warmup: int, iters: int, seed: int) -> pl.DataFrame:
    """Timed assign + pack + combine (no expert compute) per (source, k) batch and capacity factor: median
    tokens/s over ``iters`` calls. ``cases`` = (source, source_kind, ``[T, k]`` experts, E)."""
    import torch

    from moelab.kernels.timing import device_info, measure, summary
    from moelab.routing.dispatch import assign, combine, pack

    info = device_info("cpu")
    g = torch.Generator().manual_seed(int(seed))
    rows = []
    for source, kind, ex, E in cases:
        T, k = ex.shape
        experts = torch.from_numpy(ex.astype(np.int64))
        weights = torch.full((T, k), 1.0 / k)
        x = torch.randn(T, hidden, generator=g)
        for cf in factors:
            cap = capacity(cf, T, k, E)

            def call() -> torch.Tensor:
                a = assign(experts, weights, E, cap)
                return combine(pack(x, a), a)

            ms, method = measure(call, "cpu", warmup, iters)
            s = summary(ms)
            rows.append({"source": source, "source_kind": kind, "num_experts": E, "top_k": k, "tokens": T,
                         "hidden": hidden, "capacity_factor": float(cf), "capacity": cap,
                         "tokens_per_s": T / (s["latency_p50_ms"] / 1e3), **s, "timing_method": method,
                         "device_kind": info["device_kind"], "device_name": info["device_name"]})
    return pl.DataFrame(rows)


def sweep(source: str, trace: Trace | None, cfg: CapacitySpec, seed: int) -> tuple[pl.DataFrame, list]:
    """Drop rows for one source (``gaussian`` when ``trace`` is None) and its throughput cases (the first
    batch of each E and k)."""
    factors, T = cfg.factors, cfg.batch_tokens
    if trace is None:
        g = cfg.gaussian
        drops = gaussian_sweep(g.experts, g.top_k, factors, T, g.draws, seed)
        cases = [("gaussian", "gaussian", gaussian_experts(E, k, T, seed, 0), E)
                 for E in g.experts for k in g.top_k if k <= E]
        return drops, cases
    drops = trace_sweep(trace, source, cfg.top_k, factors, T, cfg.max_batches)
    _, _, first = next(trace_batches(trace, T, 1))
    cases = [(source, trace.meta.source_kind, np.ascontiguousarray(first[:, :k]), trace.meta.num_experts)
             for k in trace_top_ks(trace, cfg.top_k)]
    return drops, cases
