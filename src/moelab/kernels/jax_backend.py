"""The JAX side of the kernel benchmark (``bench.run(..., backend=JaxBackend(...))``).

Compilation and warm-up are excluded. On TPU and GPU each step's time is the device's XLA module time read
from a jax.profiler trace (host round trips dominate ``block_until_ready`` timings of small kernels); on a
CPU, and wherever the trace has no device line, each step is timed to ``block_until_ready``. The row's
``timing_method`` says which. ``profile_dir`` also keeps a trace per case for TensorBoard or Perfetto.
Pallas kernels off-TPU run in interpret mode: those rows have ``device_kind`` ``interpret`` and are never
put next to compiled ones as a speedup. The dense one-hot version materialises ``[tokens, experts,
capacity]`` and is skipped above ``dense_max_elements``."""

from __future__ import annotations

import functools
import platform
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from moelab.kernels import jax_moe as jm

JNP = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
IMPLEMENTATIONS = ("jax-dense", "jax-ragged", "jax-pallas-gmm", "jax-pallas-fused", "jax-shard_map")


def device_info() -> dict[str, str]:
    d = jax.devices()[0]
    kind = {"gpu": "cuda"}.get(d.platform, d.platform)
    name = d.device_kind
    if kind == "cpu":
        from moelab.kernels.timing import cpu_name

        name = cpu_name()
    return {"device_kind": kind, "device_name": name, "jax_version": jax.__version__,
            "python_version": platform.python_version(), "device_count": str(jax.device_count())}


def device_module_times(events: list[dict]) -> list[float] | None:
    """Durations (ms) of the XLA module executions on the first device's "XLA Modules" line of a profiler
    trace (Chrome trace events, as in ``*.trace.json.gz``); None when the trace has no device line (CPU)."""
    procs = {e["pid"]: e["args"]["name"] for e in events if e.get("ph") == "M" and e.get("name") == "process_name"}
    lanes = sorted((procs[e["pid"]], e["pid"], e["tid"]) for e in events
                   if e.get("ph") == "M" and e.get("name") == "thread_name" and e["args"].get("name") == "XLA Modules"
                   and str(procs.get(e["pid"], "")).startswith("/device:"))
    if not lanes:
        return None
    _, pid, tid = lanes[0]
    times = sorted((e["ts"], e["dur"] / 1e3) for e in events
                   if e.get("ph") == "X" and e.get("pid") == pid and e.get("tid") == tid)
    return [d for _, d in times] or None


def profiled_device_times(call: Callable, iters: int) -> np.ndarray | None:
    """``iters`` steps under jax.profiler; each step's device time, or None if the trace has none."""
    import glob
    import gzip
    import json
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        with jax.profiler.trace(tmp):
            for _ in range(iters):
                jax.block_until_ready(call())
        found = glob.glob(f"{tmp}/plugins/profile/*/*.trace.json.gz")
        if not found:
            return None
        with gzip.open(found[0]) as fh:
            times = device_module_times(json.load(fh)["traceEvents"])
    if times is None or len(times) < iters:
        return None
    return np.asarray(times[-iters:])


class JaxBackend:
    name = "jax"

    def __init__(self, spec, progress: Callable[[str], None], *, interpret_max_tokens: int = 512,  # noqa: ANN001
                 dense_max_elements: int = 1 << 26) -> None:
        unknown = sorted(set(spec.implementations) - set(IMPLEMENTATIONS))
        if unknown:
            raise ValueError(f"JAX implementations {unknown}: expected some of {IMPLEMENTATIONS}")
        self.spec = spec
        self.info = device_info()
        self.interpret = jm.interpret_mode()
        self.dtype = JNP[spec.dtype]
        self.interpret_max_tokens = interpret_max_tokens
        self.dense_max_elements = dense_max_elements
        if self.interpret:
            progress(f"Pallas runs in interpret mode on {jax.default_backend()}: its rows are labelled "
                     f"'interpret' and run up to {interpret_max_tokens} tokens")

    def wanted(self) -> list[str]:
        return list(self.spec.implementations)

    def kind_of(self, name: str) -> str:
        return "interpret" if self.interpret and name.startswith("jax-pallas") else self.info["device_kind"]

    def prepare(self, x, ids, wts, w) -> tuple:  # noqa: ANN001 - torch tensors from bench
        return (jnp.asarray(x.numpy(), self.dtype), jnp.asarray(ids.numpy()), jnp.asarray(wts.numpy(), self.dtype),
                jnp.asarray(w.gate_up.numpy(), self.dtype), jnp.asarray(w.down.numpy(), self.dtype), w.activation)

    def call(self, name: str, args: tuple, pairs: int, local_experts: int) -> tuple[Callable | None, str | None]:
        x, ids, wts, gu, dn, act = args
        T = x.shape[0]
        if name == "jax-dense":
            C = jm.capacity(pairs, local_experts, self.spec.capacity_factor)
            if T * local_experts * C > self.dense_max_elements:
                return None, f"dispatch tensor {T} x {local_experts} x {C} above {self.dense_max_elements} elements"
            fn = jax.jit(functools.partial(jm.dense, activation=act, capacity_factor=self.spec.capacity_factor,
                                           pairs=pairs))
            return (lambda: fn(x, ids, wts, gu, dn)), None
        if name.startswith("jax-pallas") and self.interpret and T > self.interpret_max_tokens:
            return None, f"interpret mode, {T} tokens > interpret_max_tokens={self.interpret_max_tokens}"
        if name == "jax-shard_map":
            return None, "the EP variant times whole layers over a device mesh (tests and multi-device runs)"
        impl = {"jax-ragged": functools.partial(jm.ragged, activation=act),
                "jax-pallas-gmm": functools.partial(jm.pallas_gmm, activation=act, interpret=self.interpret),
                "jax-pallas-fused": functools.partial(jm.pallas_fused, activation=act,
                                                      interpret=self.interpret)}[name]
        fn = jax.jit(impl)
        return (lambda: (fn(x, ids, wts, gu, dn), 0)), None

    def measure(self, call: Callable) -> tuple[np.ndarray, str]:
        for _ in range(self.spec.warmup):  # the first call compiles
            jax.block_until_ready(call())
        if self.info["device_kind"] in ("tpu", "cuda"):  # device time from the profiler, not host round trips
            ms = profiled_device_times(call, self.spec.iters)
            if ms is not None:
                return ms, "jax-profiler (device XLA module time)"
        out = np.empty(self.spec.iters)
        for i in range(self.spec.iters):
            t0 = time.perf_counter_ns()
            jax.block_until_ready(call())
            out[i] = (time.perf_counter_ns() - t0) / 1e6
        return out, "block-until-ready"

    def profile(self, call: Callable, path) -> None:  # noqa: ANN001 - a Path
        """A few steps under jax.profiler: ``path/plugins/profile/*/`` holds the TensorBoard/XProf trace and a
        Perfetto-readable ``trace.json.gz``."""
        with jax.profiler.trace(str(path)):
            for _ in range(3):
                jax.block_until_ready(call())

    @staticmethod
    def result(out: object):  # noqa: ANN205 - a torch tensor for the shared check
        import torch

        return torch.from_numpy(np.array(jnp.asarray(out, jnp.float32)))
