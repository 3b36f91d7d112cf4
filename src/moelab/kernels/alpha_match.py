"""Latency-matched alpha (the reference's way of estimating a model's skew), next to the load-matched and
maximum-likelihood ones, all three in the power-law generator's own terms.

For a captured trace: the bottleneck EP rank's layer time on its workload is compared with the same
measurement on synthetic power-law workloads of the same experts, top-k, concurrency and token count, drawn
at each alpha of a dense grid (``draws`` seeded workloads per alpha). Only sampled workloads: the generator
writes alpha = 0 as exact round-robin, which is no draw of the law (a draw at alpha near 0, x uniform on
[1, xmax], is already uneven), so a curve through it bends towards skews no alpha produces.

Per alpha the draws give a median and a band (their min to max: which experts come out hot, and which land
together on a rank, varies from draw to draw as much as alpha does). A matched alpha is where the median
curve first crosses the captured value; its interval, every alpha whose band (linear between grid points)
holds the captured value. The latency-matched alpha uses the median time; the load-matched one the bottleneck
rank's pair count (deterministic, no timing). The maximum-likelihood alpha (``moelab.synthetic.alpha_fit``)
is fitted to the same workload's per-expert loads under the same generator.

Draw d of every alpha shares its seed and scenario name, so its random streams: the experts' uniforms are the
same and only alpha moves them, which keeps each draw's curve (and so the median and band) smooth in alpha.
Timings interleave the cases round by round, so drift in the machine's speed hits every alpha alike."""

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
from moelab.synthetic import alpha_fit, powerlaw
from moelab.synthetic.scenarios import Scenario, StreamSpec, SyntheticSpec, generate

SCENARIO = "alpha-match"  # one name for every alpha: the trace id keys the random streams


def synthetic_workload(alpha: float, like: Workload, request_length: dict, reference_tokens: int,
                       seed: int) -> Workload:
    """A sampled power-law workload with ``like``'s experts, top-k, concurrency and tokens (one layer, seeded)."""
    if not alpha > 0:
        raise ValueError(f"alpha={alpha}: the generator writes alpha = 0 as round-robin, not a draw of the law")
    need = math.ceil(like.tokens / like.concurrency)
    stream = StreamSpec(like.concurrency, 2 * need + 2, 1, request_length["min"], request_length["max"])
    spec = SyntheticSpec(Scenario("powerlaw", alpha=alpha, name=SCENARIO), like.num_experts, like.top_k, stream,
                         reference_tokens, seed=seed)
    meta, table, _ = generate(spec)
    tr = traces.Trace(meta, pl.from_arrow(table))
    ex = tr.experts_by_layer()
    wt = tr.weights().reshape(ex.shape)
    return cut(ex, wt, trace=spec.trace_id, source_kind="synthetic", source_id=spec.trace_id,
               num_experts=like.num_experts, concurrency=like.concurrency, tokens=[like.tokens], split_fraction=0.5,
               seed=seed)[0]


def family(like: Workload, alphas: list[float], draws: int, *, request_length: dict, reference_tokens: int,
           seed: int) -> list[tuple[float, int, Workload]]:
    """(alpha, draw, workload) for every alpha of the grid and draw ``0..draws-1`` (seed ``seed + draw``)."""
    return [(float(a), d, synthetic_workload(a, like, request_length, reference_tokens, seed + d))
            for a in alphas for d in range(draws)]


def load_table(captured: Workload, sampled: list[tuple[float, int, Workload]], ep: int) -> pl.DataFrame:
    """One row per workload, the captured one first: the bottleneck rank's pairs and the imbalances."""
    rows = []
    for source, alpha, draw, w in [("captured", float("nan"), -1, captured), *(("sampled", *c) for c in sampled)]:
        loc = ep_local(w, ep)
        rows.append({"source": source, "alpha": alpha, "draw": draw, "bottleneck_pairs": loc.pairs,
                     "rank_imbalance": float(loc.rank_pairs.max() / loc.rank_pairs.mean()),
                     "expert_imbalance": float(w.loads().max() / w.loads().mean())})
    return pl.DataFrame(rows)


def measure(captured: Workload, shape: MoEShape, alphas: list[float], ep: int, *, request_length: dict,
            reference_tokens: int, seed: int, rounds: int, iters: int, draws: int, warmup: int = 2,
            implementation: str = "grouped") -> pl.DataFrame:
    """:func:`load_table` with each workload's busiest-rank latency (median and p95 over ``rounds`` x ``iters``
    timed calls) and the device."""
    sampled = family(captured, alphas, draws, request_length=request_length, reference_tokens=reference_tokens,
                     seed=seed)
    table = load_table(captured, sampled, ep)
    timing.keep_freed_memory()
    impl = registry.implementations(1.0)[implementation]
    weights = tm.make_weights(shape.experts // ep, shape.hidden, shape.ffn, shape.activation, dtype=torch.float32,
                              device="cpu", seed=seed)
    # one activation block for all cases (hundreds of them on a dense grid): each takes its first rows
    base = torch.randn(captured.tokens, shape.hidden, generator=torch.Generator().manual_seed(seed))
    calls = []
    for w in [captured, *(c[2] for c in sampled)]:
        loc = ep_local(w, ep)
        x = base[: loc.rows.size]
        ids, wts = torch.from_numpy(loc.ids), torch.from_numpy(loc.weights)
        calls.append(lambda x=x, ids=ids, wts=wts: impl(x, ids, wts, weights))
    samples = [[] for _ in calls]
    for _ in range(rounds):  # round-robin: every case sees the same machine state
        for i, call in enumerate(calls):
            samples[i].extend(timing.measure(call, "cpu", warmup, iters)[0])
    info = timing.device_info("cpu")
    return table.with_columns(latency_p50_ms=pl.Series([float(np.median(s)) for s in samples]),
                              latency_p95_ms=pl.Series([float(np.percentile(s, 95)) for s in samples]),
                              device_kind=pl.lit(info["device_kind"]), device_name=pl.lit(info["device_name"]))


def crossing(xs: np.ndarray, ys: np.ndarray, target: float) -> float:
    """First x where the piecewise-linear curve (xs ascending) reaches ``target``; nan if it never does."""
    for i in range(len(xs) - 1):
        lo, hi = ys[i], ys[i + 1]
        if min(lo, hi) <= target <= max(lo, hi):
            return float(xs[i] if hi == lo else xs[i] + (target - lo) / (hi - lo) * (xs[i + 1] - xs[i]))
    return float("nan")


def band_interval(xs: np.ndarray, low: np.ndarray, high: np.ndarray, target: float) -> tuple[float, float]:
    """Smallest and largest x where ``low(x) <= target <= high(x)``, both curves linear between the grid points
    ``xs`` (ascending); (nan, nan) where the band never holds ``target``. A median curve inside the band crosses
    ``target`` inside this interval."""
    found = []
    for i in range(len(xs) - 1):
        t0, t1 = 0.0, 1.0  # the part of segment i where both inequalities hold
        for start, end, sign in ((low[i], low[i + 1], 1.0), (high[i], high[i + 1], -1.0)):
            a, b = sign * (start - target), sign * (end - start)  # need a + t b <= 0
            if b > 0:
                t1 = min(t1, -a / b)
            elif b < 0:
                t0 = max(t0, -a / b)
            elif a > 0:
                t0, t1 = 1.0, 0.0
        if t0 <= t1:
            found += [xs[i] + t0 * (xs[i + 1] - xs[i]), xs[i] + t1 * (xs[i + 1] - xs[i])]
    return (float(min(found)), float(max(found))) if found else (float("nan"), float("nan"))


def bands(per_draw: pl.DataFrame) -> pl.DataFrame:
    """Per alpha over its draws: the median of each measure, and the min and max (``<measure>_low``/``_high``) of
    the bottleneck pairs and of the median latency where it was timed; the captured row first, as measured."""
    timed = "latency_p50_ms" in per_draw.columns
    measures = ["bottleneck_pairs", "rank_imbalance", "expert_imbalance"]
    measures += ["latency_p50_ms", "latency_p95_ms"] if timed else []
    spread = ["bottleneck_pairs"] + (["latency_p50_ms"] if timed else [])
    device = ["device_kind", "device_name"] if timed else []
    syn = (per_draw.filter(pl.col("source") == "sampled")
           .group_by("source", "alpha", *device, maintain_order=True)
           .agg(pl.len().alias("draws"), *(pl.col(m).median().cast(pl.Float64) for m in measures),
                *(pl.col(m).min().cast(pl.Float64).alias(f"{m}_low") for m in spread),
                *(pl.col(m).max().cast(pl.Float64).alias(f"{m}_high") for m in spread))
           .sort("alpha"))
    cap = per_draw.filter(pl.col("source") == "captured").drop("draw").with_columns(
        pl.lit(1, pl.UInt32).alias("draws"), *(pl.col(m).cast(pl.Float64) for m in measures),
        *(pl.col(m).cast(pl.Float64).alias(f"{m}_{end}") for m in spread for end in ("low", "high")))
    return pl.concat([cap, syn], how="diagonal_relaxed")


def matched(frame: pl.DataFrame, measure: str) -> tuple[float, float, float]:
    """(alpha, low, high) matched on ``measure`` of the :func:`bands` frame: where the median curve first
    crosses the captured value, and the hull of the alphas whose band holds it."""
    syn = frame.filter(pl.col("source") == "sampled").sort("alpha")
    target = float(frame.filter(pl.col("source") == "captured")[measure][0])
    xs = syn["alpha"].to_numpy()
    lo, hi = band_interval(xs, syn[f"{measure}_low"].to_numpy(), syn[f"{measure}_high"].to_numpy(), target)
    return crossing(xs, syn[measure].to_numpy(), target), lo, hi


def mle(captured: Workload, reference_tokens: int) -> alpha_fit.AlphaFit:
    """The maximum-likelihood alpha of the workload's per-expert loads, on the grid's support [1, xmax]."""
    return alpha_fit.fit(captured.loads(), captured.tokens, captured.top_k, powerlaw.xmax_for(reference_tokens))


def summarise(per_draw: pl.DataFrame, fit: alpha_fit.AlphaFit) -> pl.DataFrame:
    """:func:`bands` with the estimates on every row: ``<name>_alpha`` and its ``_low``/``_high`` for the
    load-matched, latency-matched (where timed) and maximum-likelihood alphas, and the captured values."""
    frame = bands(per_draw)
    found = {"load_matched": matched(frame, "bottleneck_pairs")}
    if "latency_p50_ms" in frame.columns:
        found["latency_matched"] = matched(frame, "latency_p50_ms")
    found["mle"] = (fit.alpha, fit.low, fit.high)
    cap = frame.row(0, named=True)
    cols = {f"{name}_alpha{end}": pl.lit(v, pl.Float64)
            for name, values in found.items() for end, v in zip(("", "_low", "_high"), values)}
    cols["mle_level"] = pl.lit(fit.level)
    cols["captured_bottleneck_pairs"] = pl.lit(cap["bottleneck_pairs"])
    if "latency_p50_ms" in frame.columns:
        cols["captured_latency_p50_ms"] = pl.lit(cap["latency_p50_ms"])
    return frame.with_columns(**cols)
