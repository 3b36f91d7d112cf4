"""FLOPs, bytes and the device's roofline for a gated-expert MoE layer (``docs/stages/kernels.md``).

FLOPs = 2 * pairs * 3 * hidden * ffn (gate, up and down projections of each token-expert pair); bytes =
weights of the experts actually touched + activations in and out. Peaks: a table of published dense
figures per device; on a CPU the measured matmul rate and copy bandwidth of this machine."""

from __future__ import annotations

import time

import numpy as np
import torch

# (dense TFLOP/s by dtype, HBM TB/s): published peaks, dense (no sparsity).
PEAKS = {
    "H100": ({"bfloat16": 989.0, "float16": 989.0, "float32": 67.0}, 3.35),
    "H200": ({"bfloat16": 989.0, "float16": 989.0, "float32": 67.0}, 4.8),
    "A100": ({"bfloat16": 312.0, "float16": 312.0, "float32": 19.5}, 2.0),
    "TPU v5e": ({"bfloat16": 197.0}, 0.819),
    "TPU v5p": ({"bfloat16": 459.0}, 2.765),
    "TPU v6e": ({"bfloat16": 918.0}, 1.638),
}


def layer_flops(pairs: int, hidden: int, ffn: int) -> float:
    return 2.0 * pairs * 3 * hidden * ffn


def layer_bytes(touched_experts: int, tokens: int, hidden: int, ffn: int, element_bytes: int) -> float:
    return float(element_bytes) * (touched_experts * 3 * hidden * ffn + 2 * tokens * hidden)


def table_peak(device_name: str, dtype: str) -> tuple[float, float] | None:
    """(FLOP/s, bytes/s) from the published table, or None for a device it does not list."""
    for key, (flops, tbs) in PEAKS.items():
        if key.lower() in device_name.lower() and dtype in flops:
            return flops[dtype] * 1e12, tbs * 1e12
    return None


def measured_cpu_peak(dtype: torch.dtype, size: int = 1024, reps: int = 7) -> tuple[float, float]:
    """(FLOP/s of a square matmul, bytes/s of a 64 MB copy), medians, with torch's current threads."""
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    times = []
    for _ in range(reps + 1):
        t0 = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - t0)
    flops = 2.0 * size**3 / float(np.median(times[1:]))
    src = torch.empty(16 * 2**20, dtype=torch.float32)
    dst = torch.empty_like(src)
    times = []
    for _ in range(reps + 1):
        t0 = time.perf_counter()
        dst.copy_(src)
        times.append(time.perf_counter() - t0)
    return flops, 2.0 * src.numel() * 4 / float(np.median(times[1:]))
