"""Workloads from a trace file, with placements fitted by the placement stage's static policies."""

from __future__ import annotations

from functools import partial

import numpy as np

from moelab.kernels.workloads import Workload, cut
from moelab.placement import static
from moelab.traces import Trace

PLACEMENTS = ("contiguous", "frequency", "coactivation_capped")


def _fit(policy: str, seed: int, load_slack: float, num_experts: int, experts: np.ndarray, ep: int) -> np.ndarray:
    return static.place(policy, experts, num_experts, ep, np.random.default_rng(seed), load_slack)


def workloads(trace: Trace, trace_id: str, tokens: list[int], ep_sizes: list[int], placements: list[str],
              split_fraction: float, seed: int, load_slack: float = 0.05) -> list[Workload]:
    """The kernel workloads of ``trace`` (see ``workloads.cut``); ``placements`` other than contiguous are
    fitted on the chosen layer's iterations before the split."""
    unknown = sorted(set(placements) - set(PLACEMENTS))
    if unknown:
        raise ValueError(f"kernels.placements {unknown}: expected some of {PLACEMENTS}")
    m = trace.meta
    fits = {p: partial(_fit, p, seed, load_slack, m.num_experts) for p in placements if p != "contiguous"}
    return cut(trace.experts_by_layer(), trace.weights().reshape(trace.n_tokens, m.n_moe_layers, m.top_k),
               trace=trace_id,
               source_kind=m.source_kind, source_id=m.source_id, num_experts=m.num_experts,
               concurrency=m.concurrency, tokens=tokens, split_fraction=split_fraction, seed=seed,
               placements=fits, ep_sizes=ep_sizes)
