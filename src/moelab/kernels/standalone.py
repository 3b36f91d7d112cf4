"""Run the kernel benchmark where our environment is missing (a GPU machine with only torch, numpy and
pyarrow): on workload files made by the pipeline (``results/kernels/workloads/<trace>.parquet``).

    PYTHONPATH=src python -m moelab.kernels.standalone results/kernels/workloads/*.parquet \\
        --shapes OLMoE-1B-7B DeepSeek-V3 --device cuda --dtype bfloat16 --out recorded/h100

writes ``<out>/kernels/<trace>.parquet`` (the pipeline's schema), ``torch.csv`` and ``summary.md``. Commit
the parquet files under ``recorded/<device>/kernels/``: the report shows them as recorded, not regenerated.
Imports nothing outside numpy, pyarrow, torch and this package's kernels modules (``--backend jax``, for TPU
machines: jax too)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from moelab.kernels import bench, bench_summary, workloads
from moelab.kernels.shapes import ShapeError, resolve


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m moelab.kernels.standalone", description=__doc__.split("\n\n")[0])
    p.add_argument("workloads", nargs="+", type=Path, help="workload parquet files from the pipeline")
    p.add_argument("--shapes", nargs="+", required=True,
                   help="built-in names, checkpoint dirs or config.json files, or JSON objects")
    p.add_argument("--out", type=Path, required=True, help="output directory (e.g. recorded/h100)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument("--dtype", default="bfloat16", choices=sorted(bench.DTYPES))
    p.add_argument("--scale", type=int, default=1, help="divide hidden and ffn by this (small runs)")
    p.add_argument("--devices", type=int, default=8)
    p.add_argument("--ep-sizes", nargs="+", type=int, default=[1, 8])
    p.add_argument("--placements", nargs="+", default=["contiguous", "frequency"])
    p.add_argument("--backend", choices=["torch", "jax"], default="torch",
                   help="torch (GPUs; needs torch) or jax (TPUs; needs jax)")
    p.add_argument("--implementations", nargs="+",
                   help="default: loop grouped capacity triton (torch); every JAX implementation (jax)")
    p.add_argument("--profile", action="store_true", help="also save a profiler trace per case under OUT/profiles")
    p.add_argument("--capacity-factor", type=float, default=1.25)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--no-graphs", action="store_true", help="time eager calls, not CUDA-graph replays")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse(sys.argv[1:] if argv is None else argv)
    try:
        shapes = [resolve(json.loads(s) if s.startswith("{") else s).scaled(a.scale) for s in a.shapes]
    except ShapeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    impls = a.implementations
    if not impls:
        impls = ["loop", "grouped", "capacity", "triton"] if a.backend == "torch" else None
    if impls is None:
        from moelab.kernels.jax_backend import IMPLEMENTATIONS

        impls = list(IMPLEMENTATIONS)
    spec = bench.BenchSpec(tuple(impls), a.dtype, a.device, a.devices, tuple(a.ep_sizes), tuple(a.placements),
                           a.capacity_factor, a.warmup, a.iters, not a.no_graphs, a.seed,
                           str(a.out / "profiles") if a.profile else None)
    backend = None
    if a.backend == "jax":
        from moelab.kernels.jax_backend import JaxBackend

        backend = JaxBackend(spec, lambda m: print(m, flush=True))
    out = a.out / "kernels"
    out.mkdir(parents=True, exist_ok=True)
    every = []
    for path in a.workloads:
        try:
            cases = workloads.read(path)
        except workloads.WorkloadError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        rows = bench.run(cases, shapes, spec, progress=lambda m: print(m, flush=True), backend=backend)
        tmp = out / f".{cases[0].trace}.parquet.tmp"
        bench.write_rows(tmp, rows, provenance="regenerated")
        tmp.replace(out / f"{cases[0].trace}.parquet")
        every += rows
    (a.out / "torch.csv").write_text(bench_summary.to_csv(every))
    (a.out / "summary.md").write_text(bench_summary.to_markdown(every))
    print(f"{len(every)} measurements in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
