"""Co-activation with its null on a 1M-token x 16-layer x k=8 trace, on one core.
Target: under a minute. The trace is synthetic (power-law alpha 1.2, 64 experts, shuffled pairing).

    NUMBA_NUM_THREADS=1 .venv/bin/python benchmarks/bench_coactivation.py [--tokens 1048576]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("POLARS_MAX_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=1 << 20)
    ap.add_argument("--layers", type=int, default=16)
    ap.add_argument("--experts", type=int, default=64)
    ap.add_argument("--top-k", type=int, default=8)
    ap.add_argument("--groups", type=int, default=8)
    args = ap.parse_args()

    import polars as pl

    from moelab import coactivation
    from moelab.synthetic.scenarios import Scenario, StreamSpec, SyntheticSpec, generate
    from moelab.traces import Trace

    conc = 64
    spec = SyntheticSpec(Scenario.from_config({"kind": "powerlaw", "alpha": 1.2}), args.experts, args.top_k,
                         StreamSpec(conc, args.tokens // conc, args.layers, 16, 256), 4096, 1)
    t0 = time.perf_counter()
    meta, table, _ = generate(spec)
    trace = Trace(meta, pl.from_arrow(table))
    print(f"trace: {trace.n_tokens} tokens x {args.layers} layers, E={args.experts}, k={args.top_k} "
          f"(generated in {time.perf_counter() - t0:.1f} s)")
    coactivation.analyse(Trace(meta, trace.frame.head(conc * 64 * args.layers)), args.groups, 1)  # compile
    t0 = time.perf_counter()
    layers, _, _ = coactivation.analyse(trace, args.groups, seed=1)
    dt = time.perf_counter() - t0
    print(layers.select("layer", "gain", "gain_null", "mi_bits").describe())
    print(f"co-activation + null + MI: {dt:.1f} s on one core (target < 60 s)")


if __name__ == "__main__":
    main()
