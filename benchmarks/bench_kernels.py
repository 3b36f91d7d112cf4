"""Kernel-stage goal on this CPU: the grouped path (sort + torch._grouped_mm) against the
per-expert loop on imbalanced (power-law alpha 1.2) workloads at prefill sizes, measured side by side in one
run, medians over --iters calls; balanced (alpha 0) and decode sizes printed next to them for contrast.
Workloads are cut from synthetic traces generated here (seeded) exactly as the pipeline cuts them; shapes
are OLMoE-1B-7B and DeepSeek-V3 with hidden and ffn / 8 (CPU-sized), the whole layer on one device.

    .venv/bin/python benchmarks/bench_kernels.py [--iters 15] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import torch

    from moelab import traces
    from moelab.kernels import bench, shapes
    from moelab.kernels.from_trace import workloads
    from moelab.synthetic.scenarios import Scenario, StreamSpec, SyntheticSpec, generate

    torch.set_num_threads(args.threads)
    stream = StreamSpec(concurrency=64, iterations=192, layers=1, min_request=16, max_request=256)
    spec = bench.BenchSpec(implementations=("loop", "grouped"), warmup=2, iters=args.iters, seed=1)
    print(f"{'trace':<28} {'shape':<34} {'tokens':>6} {'loop ms':>9} {'grouped ms':>10} {'loop/grouped':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        for E, shape in ((64, "OLMoE-1B-7B"), (256, "DeepSeek-V3")):
            for alpha in (1.2, 0.0):
                syn = SyntheticSpec(Scenario("powerlaw", alpha=alpha), E, 8, stream, 4096, seed=3)
                meta, table, _ = generate(syn)
                path = Path(tmp) / f"{syn.trace_id}.parquet"
                traces.write_trace(path, meta, table)
                ws = workloads(traces.read_trace(path), syn.trace_id, [16, 4096], [1], ["contiguous"], 0.5, seed=5)
                rows = bench.run(ws, [shapes.BUILTIN[shape].scaled(8)], spec, progress=lambda m: None)
                by = {(r["tokens"], r["implementation"]): r["latency_p50_ms"] for r in rows}
                for n in (4096, 16):
                    loop, grouped = by[(n, "loop")], by[(n, "grouped")]
                    print(f"{syn.trace_id:<28} {rows[0]['shape_label']:<34} {n:>6} {loop:>9.2f} {grouped:>10.2f} "
                          f"{loop / grouped:>11.2f}x")
    print(f"device: {rows[0]['device_name']}, {args.threads} thread(s); goal: loop/grouped > 1 on alpha 1.2 at 4096")


if __name__ == "__main__":
    main()
