"""Synthetic scenarios, all written in the trace format, iteration by iteration and per layer.

powerlaw (alpha 0 = perfectly balanced, as the reference), balanced (round-robin), uniform (loads
drawn from a flat profile: not balanced), random (gaussian logits -> top-k, softmax weights),
imbalanced (max/mean load calibrated to ``imbalance_factor``).
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from moelab.stream import Stream, synthetic_stream
from moelab.synthetic import PAIRINGS
from moelab.synthetic import loads as _loads
from moelab.synthetic import powerlaw
from moelab.synthetic.drift import Drift, drifting_profile

if TYPE_CHECKING:
    from moelab.traces import TraceMeta

KINDS = ("powerlaw", "balanced", "uniform", "random", "imbalanced")
DEFAULT_DRAW = {"powerlaw": "multinomial", "uniform": "multinomial", "imbalanced": "systematic"}


@dataclass(frozen=True)
class Scenario:
    """One synthetic scenario (shape-free: it runs at every configured (num_experts, top_k))."""

    kind: str
    alpha: float | None = None
    imbalance_factor: float | None = None
    loads: str = "sampled"  # powerlaw: sampled per iteration, or the reference's deterministic batch
    draw: str | None = None
    pairing: str = "shuffled"
    drift: str = "none"
    worst_case_ep: int = 0
    name: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"scenario kind={self.kind!r}: expected one of {KINDS}")
        if self.kind == "powerlaw" and (self.alpha is None or not self.alpha >= 0):
            raise ValueError(f"powerlaw scenario needs alpha >= 0, got {self.alpha!r}")
        if self.kind == "imbalanced" and (self.imbalance_factor is None or self.imbalance_factor < 1):
            raise ValueError(f"imbalanced scenario needs imbalance_factor >= 1, got {self.imbalance_factor!r}")
        if self.loads not in ("sampled", "reference"):
            raise ValueError(f"loads={self.loads!r}: expected 'sampled' or 'reference'")
        if self.pairing not in PAIRINGS:
            raise ValueError(f"pairing={self.pairing!r}: expected one of {PAIRINGS}")
        if self.draw is None:
            object.__setattr__(self, "draw", DEFAULT_DRAW.get(self.kind, "multinomial"))
        if self.name is None:
            object.__setattr__(self, "name", self._derived_name())

    def _derived_name(self) -> str:
        parts = [self.kind]
        if self.kind == "powerlaw":
            parts.append(f"alpha{self.alpha:g}")
        if self.kind == "imbalanced":
            parts.append(f"factor{self.imbalance_factor:g}")
        if self.loads != "sampled":
            parts.append(f"loads-{self.loads}")
        if self.draw != DEFAULT_DRAW.get(self.kind, "multinomial"):
            parts.append(f"draw-{self.draw}")
        if self.pairing != "shuffled":
            parts.append(self.pairing)
        if self.drift != "none":
            parts.append(f"drift-{self.drift}")
        if self.worst_case_ep:
            parts.append(f"worstep{self.worst_case_ep}")
        return "-".join(parts)

    @classmethod
    def from_config(cls, raw: dict[str, Any]) -> "Scenario":
        return cls(**raw)


@dataclass(frozen=True)
class StreamSpec:
    concurrency: int
    iterations: int
    layers: int
    min_request: int
    max_request: int


@dataclass(frozen=True)
class SyntheticSpec:
    scenario: Scenario
    num_experts: int
    top_k: int
    stream: StreamSpec
    reference_tokens: int
    seed: int
    drift: Drift = field(default_factory=Drift)

    @property
    def trace_id(self) -> str:
        return trace_id(self.scenario.name, self.num_experts, self.top_k)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (rule params: a change in it reruns the job)."""
        d = asdict(self)
        d["scenario"] = {key: v for key, v in d["scenario"].items() if v is not None}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SyntheticSpec":
        return cls(scenario=Scenario(**d["scenario"]), num_experts=d["num_experts"], top_k=d["top_k"],
                   stream=StreamSpec(**d["stream"]), reference_tokens=d["reference_tokens"],
                   seed=d["seed"], drift=Drift(**d["drift"]))


def trace_id(scenario_name: str, num_experts: int, top_k: int) -> str:
    return f"{scenario_name}-E{num_experts}-k{top_k}"


def _rng(seed: int, *key: str) -> np.random.Generator:
    """Independent, stable streams per purpose: SeedSequence keyed by crc32 of names."""
    return np.random.default_rng(np.random.SeedSequence([seed, *(zlib.crc32(k.encode()) for k in key)]))


def layer_profiles(spec: SyntheticSpec, rng: np.random.Generator) -> np.ndarray:
    """Base popularity ``[layers, E]`` for load-driven scenarios."""
    sc, E, L = spec.scenario, spec.num_experts, spec.stream.layers
    if sc.kind == "powerlaw":
        return powerlaw.profile(rng, sc.alpha, E, spec.reference_tokens, layers=L)
    if sc.kind == "uniform":
        return np.full((L, E), 1.0 / E)
    if sc.kind == "imbalanced":
        return np.broadcast_to(_loads.exponential_profile(E, sc.imbalance_factor), (L, E)).copy()
    raise ValueError(f"scenario kind {sc.kind!r} has no load profile")


def layer_loads(spec: SyntheticSpec, base: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per-iteration loads ``[I, E]`` for one layer from its base profile ``[E]``."""
    sc, st, k = spec.scenario, spec.stream, spec.top_k
    prof = drifting_profile(rng, base, st.iterations, spec.drift)
    if sc.loads == "reference":
        if not spec.drift.is_static:
            raise ValueError("loads='reference' is one deterministic batch: it cannot drift")
        # as the reference: the batch's loads first (excess spread rank by rank), then the heaviest rank's
        # experts swapped to rank 0, chosen by those loads
        ep = sc.worst_case_ep or 1
        one = powerlaw.reference_batch_loads(prof[0], st.concurrency, k, ep=ep)
        if sc.worst_case_ep:
            one = one[_loads.worst_case_ep_permutation(one, ep)]
        return np.broadcast_to(one, (st.iterations, spec.num_experts)).copy()
    if sc.worst_case_ep:
        perm = _loads.worst_case_ep_permutation(prof.mean(axis=0), sc.worst_case_ep)
        prof = prof[:, perm]
    pi = _loads.cap_profile(prof, k)
    return _loads.draw_loads(rng, pi, st.concurrency, k, sc.draw)


def _round_robin(n_tokens: int, num_experts: int, top_k: int) -> np.ndarray:
    t = np.arange(n_tokens, dtype=np.int64)[:, None]
    return np.sort((t * top_k + np.arange(top_k)) % num_experts, axis=1).astype(np.uint16)


def _gaussian_topk(rng: np.random.Generator, n_tokens: int, num_experts: int, top_k: int,
                   chunk: int = 1 << 15) -> tuple[np.ndarray, np.ndarray]:
    ex = np.empty((n_tokens, top_k), np.uint16)
    we = np.empty((n_tokens, top_k), np.float32)
    for a in range(0, n_tokens, chunk):
        logits = rng.standard_normal((min(chunk, n_tokens - a), num_experts), dtype=np.float32)
        top = np.argpartition(-logits, top_k - 1, axis=1)[:, :top_k]
        vals = np.take_along_axis(logits, top, axis=1)
        w = np.exp(vals - vals.max(axis=1, keepdims=True))
        w = (w / w.sum(axis=1, keepdims=True)).astype(np.float32)
        order = np.lexsort((top, -w), axis=1)  # the contract's order on the stored f32 weights
        ex[a : a + len(top)] = np.take_along_axis(top, order, axis=1)
        we[a : a + len(top)] = np.take_along_axis(w, order, axis=1)
    return ex, we


def generate(spec: SyntheticSpec) -> tuple[TraceMeta, "pa.Table", Stream]:  # noqa: F821
    """Generate the trace for one scenario at one shape. Deterministic in (spec, seed)."""
    # imported here: the specs above are read by the workflow in every Snakemake process, the trace table's
    # libraries (polars, pyarrow) only by the job that writes a trace
    from moelab.traces import TraceMeta, build_table

    sc, st, E, k, L = spec.scenario, spec.stream, spec.num_experts, spec.top_k, spec.stream.layers
    if k > E:
        raise ValueError(f"top_k={k} exceeds num_experts={E}")
    stream = synthetic_stream(_rng(spec.seed, "stream"), st.concurrency, st.iterations,
                              st.min_request, st.max_request)
    T = stream.n_tokens
    rng = _rng(spec.seed, "routing", spec.trace_id)
    experts = np.empty((T, L, k), np.uint16)
    weights = np.full((T, L, k), 1.0 / k, np.float32)
    if sc.kind == "balanced" or (sc.kind == "powerlaw" and sc.alpha == 0):
        experts[:] = _round_robin(T, E, k)[:, None, :]
    elif sc.kind == "random":
        for layer in range(L):
            experts[:, layer], weights[:, layer] = _gaussian_topk(rng, T, E, k)
    else:
        from moelab.synthetic import assign as _assign  # numba: loaded by the jobs that generate, not the config

        base = layer_profiles(spec, rng)
        for layer in range(L):
            loads = layer_loads(spec, base[layer], rng)
            _assign.assign(loads, st.concurrency, k, sc.pairing, rng, out=experts[:, layer])
    config = spec.to_dict()
    meta = TraceMeta(source_kind="synthetic", source_id=spec.trace_id, num_experts=E, top_k=k,
                     n_moe_layers=L, concurrency=st.concurrency, domains=(sc.name,), config=config)
    table = build_table(meta, t=np.arange(T), doc=stream.request, pos=stream.pos, token=None,
                        domain_code=np.zeros(T, np.int8), is_test=stream.is_test(),
                        experts=experts, weights=weights)
    return meta, table, stream
