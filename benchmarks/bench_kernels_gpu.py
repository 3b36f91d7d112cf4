"""The kernel stage's GPU goals, measured side by side in one run on the GPU this runs on:

- prefill (>= 4096 tokens, bf16, Mixtral-8x7B shape, alpha 1.2 routing): the grouped and Triton paths'
  achieved TFLOP/s as a fraction of the device's bf16 peak (goal: at least 50%);
- decode (16 and 128 tokens): bytes of the experts' weights touched (plus activations) over the time, as a
  fraction of HBM bandwidth (goal: at least 70%).

Peaks come from the published table (moelab.kernels.roofline.PEAKS). Without a CUDA device it says so and
measures nothing.

    .venv/bin/python benchmarks/bench_kernels_gpu.py [--iters 50]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=50)
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device here: the GPU goals are not measured")
        return
    from moelab import traces
    from moelab.kernels import bench, shapes
    from moelab.kernels.from_trace import workloads
    from moelab.synthetic.scenarios import Scenario, StreamSpec, SyntheticSpec, generate

    stream = StreamSpec(concurrency=256, iterations=80, layers=1, min_request=16, max_request=256)
    syn = SyntheticSpec(Scenario("powerlaw", alpha=1.2), 8, 2, stream, 4096, seed=3)
    meta, table, _ = generate(syn)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.parquet"
        traces.write_trace(path, meta, table)
        ws = workloads(traces.read_trace(path), syn.trace_id, [16, 128, 4096, 8192], [1], ["contiguous"], 0.5, 5)
    spec = bench.BenchSpec(implementations=("loop", "grouped", "triton"), dtype="bfloat16", device="cuda",
                           warmup=5, iters=args.iters, seed=1)
    rows = bench.run(ws, [shapes.BUILTIN["Mixtral-8x7B"]], spec, progress=lambda m: None)
    print(f"{rows[0]['device_name']}: peak {rows[0]['peak_tflops']:.0f} TFLOP/s, {rows[0]['peak_tbps']:.2f} TB/s "
          f"({rows[0]['peak_source']})")
    print(f"{'tokens':>6} {'impl':<8} {'p50 ms':>9} {'TFLOP/s':>8} {'of peak':>8} {'TB/s':>6} {'of HBM':>7} timing")
    for r in sorted(rows, key=lambda r: (r["tokens"], r["implementation"])):
        print(f"{r['tokens']:>6} {r['implementation']:<8} {r['latency_p50_ms']:>9.4f} {r['tflops']:>8.1f} "
              f"{r['frac_peak_flops']:>8.1%} {r['tbps']:>6.2f} {r['frac_peak_bw']:>7.1%} {r['timing_method']}")
    print("goals: >= 50% of bf16 peak at >= 4096 tokens; >= 70% of HBM bandwidth at 16 and 128 tokens")


if __name__ == "__main__":
    main()
