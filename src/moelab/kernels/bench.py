"""The kernel benchmark: every (workload, shape, EP split, placement, implementation) case, one row each.

Runs on numpy, pyarrow and torch alone (the standalone entry point shares it). Each case:

1. cuts the bottleneck rank's problem out of the workload (``ep = 1``: the whole layer) and gives each
   expert ``ffn / tp`` columns (``tp = devices // ep``, the reference's EP x TP split);
2. checks every implementation against the per-expert loop on that problem (the capacity version against
   the loop over the pairs it kept) and refuses to time a wrong one;
3. times it (``timing.measure``) and derives FLOPs, bytes, TFLOP/s, GB/s and the fraction of the roofline.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from moelab.devices import resolve_device
from moelab.kernels import registry, roofline, timing
from moelab.kernels import torch_moe as tm
from moelab.kernels.shapes import MoEShape
from moelab.kernels.workloads import Workload, ep_local

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
TOLERANCE = {"float32": 1e-4, "bfloat16": 3e-2, "float16": 1e-2}  # max |out - ref| / max |ref|


class KernelMismatch(AssertionError):
    """An implementation disagrees with the reference beyond the dtype's tolerance."""


@dataclass(frozen=True)
class BenchSpec:
    implementations: tuple[str, ...] = ("loop", "grouped", "capacity")
    dtype: str = "float32"
    device: str = "cpu"
    devices: int = 1
    ep_sizes: tuple[int, ...] = (1,)
    placements: tuple[str, ...] = ("contiguous",)
    capacity_factor: float = 1.25
    warmup: int = 2
    iters: int = 10
    graphs: bool = True
    seed: int = 0
    profile_dir: str | None = None  # a profiler trace per case (torch: Chrome/Perfetto JSON; JAX: TensorBoard)

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"kernels dtype {self.dtype!r}: expected one of {sorted(DTYPES)}")
        for ep in self.ep_sizes:
            if ep < 1 or self.devices % ep:
                raise ValueError(f"kernels ep size {ep} must divide devices={self.devices}")


def spec_from_params(params: dict, trace: str, **override: object) -> BenchSpec:
    """The BenchSpec a benchmark rule's ``spec`` param describes (lists as tuples; ``profile: true`` puts a
    profiler trace per case under ``results/bench/kernels/profiles/<trace>/``, not a declared output)."""
    raw = {k: tuple(v) if isinstance(v, list) else v for k, v in {**params, **override}.items()}
    if raw.pop("profile", False):
        raw["profile_dir"] = f"results/bench/kernels/profiles/{trace}"
    return BenchSpec(**raw)


class TorchBackend:
    """PyTorch implementations (``torch_moe``; Triton where CUDA and Triton are present)."""

    name = "torch"

    def __init__(self, spec: BenchSpec, progress: Callable[[str], None]) -> None:
        self.device = resolve_device(spec.device, "kernels.device")
        if self.device == "cpu" and not timing.keep_freed_memory():
            progress("glibc's mallopt is not available: large temporaries pay page faults on every call")
        self.info = timing.device_info(self.device)
        self.spec = spec
        self.impls = registry.implementations(spec.capacity_factor)
        missing = sorted(set(spec.implementations) - set(self.impls))
        if missing:
            progress(f"not run here: {missing} ({registry.triton_available()[1]})")

    def wanted(self) -> list[str]:
        return [i for i in self.spec.implementations if i in self.impls]

    def kind_of(self, name: str) -> str:
        return self.info["device_kind"]

    def prepare(self, x: torch.Tensor, ids: torch.Tensor, wts: torch.Tensor, w: tm.ExpertWeights) -> tuple:
        d, dt = self.device, DTYPES[self.spec.dtype]
        return (x.to(d, dt), ids.to(d), wts.to(d, dt),
                tm.ExpertWeights(w.gate_up.to(d, dt), w.down.to(d, dt), w.activation))

    def call(self, name: str, args: tuple, pairs: int, local_experts: int) -> tuple[Callable, str | None]:
        fn = self.impls[name]
        return (lambda: fn(*args)), None

    def measure(self, call: Callable) -> tuple[np.ndarray, str]:
        return timing.measure(call, self.device, self.spec.warmup, self.spec.iters, self.spec.graphs)

    @staticmethod
    def result(out: object) -> torch.Tensor:
        return out.float().cpu()

    def profile(self, call: Callable, path: Path) -> None:
        """A few calls under torch.profiler, saved as a Chrome/Perfetto trace ``path.json``."""
        from torch.profiler import ProfilerActivity, profile

        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.device.startswith("cuda") else [])
        with profile(activities=acts) as prof:
            for _ in range(3):
                call()
            if self.device.startswith("cuda"):
                torch.cuda.synchronize()
        prof.export_chrome_trace(str(path.with_suffix(".json")))


def peaks(device_kind: str, device_name: str, dtype: str) -> tuple[float, float, str]:
    """(FLOP/s, bytes/s, where they come from) for the roofline columns."""
    if device_kind == "cpu":
        f, b = roofline.measured_cpu_peak(DTYPES[dtype])
        return f, b, "measured on this CPU"
    found = roofline.table_peak(device_name, dtype)
    if found is None:
        return float("nan"), float("nan"), f"no published peak for {device_name}"
    return found[0], found[1], "published table"


def _check(name: str, out: torch.Tensor, ref: torch.Tensor, dtype: str, case: str) -> float:
    scale = float(ref.abs().max()) or 1.0
    err = float((out.float() - ref.float()).abs().max()) / scale
    if not np.isfinite(err) or err > TOLERANCE[dtype]:
        raise KernelMismatch(f"{case}: {name} differs from the per-expert loop by {err:.3g} (relative), "
                             f"tolerance {TOLERANCE[dtype]} for {dtype}")
    return err


def _capacity_reference(x, ids, wts, w, factor):  # noqa: ANN001, ANN202 - tensors
    """The loop over exactly the pairs the capacity version keeps (first come, per expert)."""
    token, expert, _ = tm._pairs(ids, wts)
    cap = tm.capacity(token.numel(), w.experts, factor)
    order, _, keep = tm.capacity_keep(expert, w.experts, cap)
    kept_ids = torch.full_like(ids, -1)
    flat_slot = (ids >= 0).reshape(-1).nonzero().squeeze(1)[order[keep]]  # flat positions kept
    kept_ids.view(-1)[flat_slot] = ids.reshape(-1)[flat_slot]
    return tm.moe_loop(x, kept_ids, wts, w)


def write_rows(path, rows: list[dict], provenance: str) -> None:  # noqa: ANN001 - a path
    """The measurements as parquet (pyarrow: the standalone entry point writes the same schema)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not rows:
        raise ValueError(f"{path}: no measurements to write")
    pq.write_table(pa.Table.from_pylist([{**r, "provenance": provenance} for r in rows]), path)


def ffn_per_rank(ffn: int, tp: int) -> int:
    """``ffn / tp`` columns per tensor-parallel rank, rounded up to a multiple of 8 (grouped GEMMs need
    16-byte row strides); rows record the value used."""
    return max(8, -(-(ffn // tp) // 8) * 8)


def run(workloads: list[Workload], shapes: list[MoEShape], spec: BenchSpec,
        progress: Callable[[str], None] = log.info, backend: object | None = None) -> list[dict]:
    """One row per case; shapes whose experts/top-k differ from a workload's are not paired with it.
    ``backend``: :class:`TorchBackend` (default) or ``jax_backend.JaxBackend``."""
    torch.manual_seed(spec.seed)
    backend = backend or TorchBackend(spec, progress)
    info = backend.info
    peak = peaks(info["device_kind"], info["device_name"], spec.dtype)
    rows = []
    for w in workloads:
        if not any((s.experts, s.top_k) == (w.num_experts, w.top_k) for s in shapes):
            raise ValueError(f"{w.trace}: {w.num_experts} experts, top-{w.top_k}, and no shape in "
                             f"{[s.name for s in shapes]} has that routing (add one to kernels.shapes)")
        loads = w.loads()
        for shape in shapes:
            if (shape.experts, shape.top_k) != (w.num_experts, w.top_k):
                continue
            for ep in spec.ep_sizes:
                tp = spec.devices // ep
                ffn = ffn_per_rank(shape.ffn, tp)
                for placement in (("contiguous",) if ep == 1 else spec.placements):
                    rows += _case(w, shape, ep, tp, ffn, placement, spec, backend, loads, peak, progress)
    return rows


def _case(w, shape, ep, tp, ffn, placement, spec, backend, loads, peak, progress) -> list[dict]:  # noqa: ANN001
    local = ep_local(w, ep, placement)
    case = (f"{w.trace} {shape.label} tokens={w.tokens} ep={ep} tp={tp} {placement} "
            f"(rank {local.rank}: {local.pairs} pairs)")
    seed = [spec.seed, w.tokens, ep, shape.hidden, ffn]
    # weights and inputs are made (seeded) and checked in torch on the CPU; a backend moves them where it runs
    weights = tm.make_weights(len(local.local_experts), shape.hidden, ffn, shape.activation, dtype=torch.float32,
                              device="cpu", seed=int(np.random.SeedSequence(seed).generate_state(1)[0]))
    g = torch.Generator().manual_seed(int(np.random.SeedSequence(seed + [1]).generate_state(1)[0]))
    x = torch.randn(local.rows.size, shape.hidden, generator=g)
    ids = torch.from_numpy(local.ids)
    wts = torch.from_numpy(local.weights)
    dtype = DTYPES[spec.dtype]
    if dtype != torch.float32:  # the reference sees the same rounded inputs as the implementations
        x, wts = x.to(dtype).float(), wts.to(dtype).float()
        weights = tm.ExpertWeights(weights.gate_up.to(dtype).float(), weights.down.to(dtype).float(),
                                   weights.activation)
    ref = tm.moe_loop(x, ids, wts, weights)
    cap_ref = None
    args = backend.prepare(x, ids, wts, weights)
    touched = int(np.unique(local.ids[local.ids >= 0]).size)
    flops = roofline.layer_flops(local.pairs, shape.hidden, ffn)
    element = torch.empty((), dtype=dtype).element_size()
    nbytes = roofline.layer_bytes(touched, local.rows.size, shape.hidden, ffn, element)
    base = {
        "trace": w.trace, "source_kind": w.source_kind, "source_id": w.source_id,
        "shape": shape.name, "shape_label": shape.label, "scale": shape.scale, "hidden": shape.hidden,
        "ffn": shape.ffn, "ffn_local": ffn, "experts": shape.experts, "top_k": shape.top_k,
        "activation": shape.activation, "tokens": w.tokens, "layer": w.layer,
        "start_iteration": w.start_iteration, "devices": spec.devices, "ep": ep, "tp": tp,
        "placement": placement, "rank": local.rank, "local_experts": int(local.local_experts.size),
        "local_tokens": int(local.rows.size), "local_pairs": local.pairs, "touched_experts": touched,
        "max_load": int(loads.max()), "min_load": int(loads.min()), "avg_load": float(loads.mean()),
        "max_imbalance": float(loads.max() / loads.mean()),
        "rank_imbalance": float(local.rank_pairs.max() / local.rank_pairs.mean()),
        "dtype": spec.dtype, "capacity_factor": spec.capacity_factor, "warmup": spec.warmup,
        "iters": spec.iters, "flops": flops, "bytes": nbytes, "peak_tflops": peak[0] / 1e12,
        "peak_tbps": peak[1] / 1e12, "peak_source": peak[2], "backend": backend.name, **backend.info,
    }
    rows = []
    for name in backend.wanted():
        call, skip = backend.call(name, args, local.pairs, len(local.local_experts))
        if skip:
            progress(f"{case} {name}: not run ({skip})")
            continue
        out, dropped = call()
        if name in ("capacity", "jax-dense"):
            if cap_ref is None:
                cap_ref = _capacity_reference(x, ids, wts, weights, spec.capacity_factor)
            err = _check(name, backend.result(out), cap_ref, spec.dtype, case)
        else:
            err = _check(name, backend.result(out), ref, spec.dtype, case)
        ms, method = backend.measure(call)
        if spec.profile_dir:
            where = Path(spec.profile_dir) / f"{backend.name}-{shape.name}-t{w.tokens}-ep{ep}-{placement}-{name}"
            where.parent.mkdir(parents=True, exist_ok=True)
            backend.profile(call, where)
        stats = timing.summary(ms)
        sec = stats["latency_p50_ms"] / 1e3
        kind = backend.kind_of(name)
        rows.append({**base, "device_kind": kind, "implementation": name, "timing_method": method, **stats,
                     "throughput_tok_per_sec": w.tokens / sec, "tflops": flops / sec / 1e12,
                     "tbps": nbytes / sec / 1e12, "frac_peak_flops": flops / sec / peak[0],
                     "frac_peak_bw": nbytes / sec / peak[1], "dropped_pairs": int(dropped),
                     "drop_rate": int(dropped) / max(1, local.pairs), "max_rel_err": err})
        progress(f"{case} {name}: p50 {stats['latency_p50_ms']:.3f} ms ({method}, {kind})")
    return rows
