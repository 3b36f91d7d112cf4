"""Timing discipline (``docs/stages/kernels.md``, "Timing").

Warm-up calls (compilation, autotuning, allocator growth) are never timed. On a GPU each sample is one
replay of a CUDA graph of the call, bracketed by CUDA events; where the call cannot be captured (it waits
for the host, as the per-expert loop does) each sample is one eager call between events, and the row says
which. On a CPU each sample is one call timed with ``perf_counter_ns``. Medians and tails are reported."""

from __future__ import annotations

import ctypes
import platform
import time
from typing import Callable

import numpy as np
import torch


def keep_freed_memory() -> bool:
    """Make glibc keep freed blocks for reuse instead of returning every large one to the OS.

    By default each allocation above 32 MB is a fresh mmap, so every call of a layer that materialises a
    large intermediate pays page faults that a serving process (or CUDA's caching allocator) never pays;
    measured here, they tripled the grouped path's time at 4096 tokens. Returns False where glibc is absent."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    return bool(libc.mallopt(M_MMAP_THRESHOLD, 1 << 30)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 1 << 31))


def summary(ms: np.ndarray) -> dict[str, float]:
    ms = np.asarray(ms, dtype=np.float64)
    return {"latency_mean_ms": float(ms.mean()), "latency_std_ms": float(ms.std()),
            "latency_min_ms": float(ms.min()), "latency_p50_ms": float(np.median(ms)),
            "latency_p95_ms": float(np.percentile(ms, 95)), "latency_p99_ms": float(np.percentile(ms, 99))}


def _cpu(fn: Callable[[], object], warmup: int, iters: int) -> np.ndarray:
    for _ in range(warmup):
        fn()
    out = np.empty(iters)
    for i in range(iters):
        t0 = time.perf_counter_ns()
        fn()
        out[i] = (time.perf_counter_ns() - t0) / 1e6
    return out


def _cuda_graph(fn: Callable[[], object], iters: int) -> np.ndarray:
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        fn()  # allocations for the capture pool
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    graph.replay()
    torch.cuda.synchronize()
    return _events(graph.replay, iters)


def _events(fn: Callable[[], object], iters: int) -> np.ndarray:
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
    for s, e in zip(starts, ends):
        s.record()
        fn()
        e.record()
    torch.cuda.synchronize()
    return np.array([s.elapsed_time(e) for s, e in zip(starts, ends)])


def measure(fn: Callable[[], object], device: str, warmup: int, iters: int,
            graphs: bool = True) -> tuple[np.ndarray, str]:
    """Per-call latencies in ms and how they were taken (``cuda-graph``, ``cuda-events`` or ``perf-counter``)."""
    if warmup < 1 or iters < 1:
        raise ValueError(f"warmup={warmup} and iters={iters} must be >= 1")
    if not str(device).startswith("cuda"):
        return _cpu(fn, warmup, iters), "perf-counter"
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    if graphs:
        try:
            return _cuda_graph(fn, iters), "cuda-graph"
        except RuntimeError:  # the call synchronises with the host: no graph, time it eagerly
            torch.cuda.synchronize()
    return _events(fn, iters), "cuda-events"


def device_info(device: str) -> dict[str, str]:
    """``device_kind``/``device_name`` (``docs/design.md``) and what else identifies the run."""
    info = {"torch_version": torch.__version__, "python_version": platform.python_version()}
    if str(device).startswith("cuda"):
        props = torch.cuda.get_device_properties(device)
        info.update(device_kind="cuda", device_name=props.name, cuda_version=str(torch.version.cuda),
                    clock_note=_clocks())
    else:
        info.update(device_kind="cpu", device_name=cpu_name(), cuda_version="", clock_note="")
    return info


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _clocks() -> str:
    """SM clock now / max when pynvml can read them (throttling shows as a low ratio)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        h = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
        now = pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM)
        top = pynvml.nvmlDeviceGetMaxClockInfo(h, pynvml.NVML_CLOCK_SM)
        return f"sm clock {now}/{top} MHz"
    except Exception:  # noqa: BLE001 - clocks are informative only
        return "clocks not readable"
