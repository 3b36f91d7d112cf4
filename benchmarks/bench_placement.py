"""Placement-stage speed on one core (medians):
- one EPLB call at DS-R1 scale: 58 layers x 256 experts onto 288 slots on 32 GPUs; target under
  100 ms (the published PyTorch code takes over a second on CPU);
- LRU expert-cache simulation: 1M tokens x k=8 over 64 experts; target at least 10M activations/s;
- the dynamic simulator on DS-R1-shaped hotness (58 layers x 256 experts, 32 devices x 9 slots,
  8192 iterations) with EPLB every 1024 iterations; target under 60 s. The hotness here is i.i.d.
  Poisson around a geometric profile: a speed test, not the pinned evaluation.

    .venv/bin/python benchmarks/bench_placement.py [--repeats 9]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main() -> None:
    import numpy as np

    from moelab import cache
    from moelab.placement import eplb

    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args()
    w = np.random.default_rng(0).pareto(1.2, size=(58, 256)) * 100  # heavy-tailed loads
    for name, groups, nodes in (("global", 1, 1), ("hierarchical (8 groups, 4 nodes)", 8, 4)):
        eplb.rebalance(w, 288, groups, nodes, 32)
        ts = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            eplb.rebalance(w, 288, groups, nodes, 32)
            ts.append(time.perf_counter() - t0)
        print(f"EPLB {name}: {np.median(ts) * 1e3:.1f} ms median (target < 100 ms)")
    rng = np.random.default_rng(1)
    req = np.argsort(-(rng.normal(size=(1 << 20, 64)) + rng.normal(0, 1, 64)), 1)[:, :8]
    cache.simulate(req[:1000], 64, 16, "lru")  # compile
    for capacity in (16, 32):
        ts = []
        for _ in range(max(3, args.repeats // 3)):
            t0 = time.perf_counter()
            r = cache.simulate(req, 64, capacity, "lru")
            ts.append(time.perf_counter() - t0)
        print(f"LRU capacity {capacity}: {req.size / np.median(ts) / 1e6:.0f}M activations/s "
              f"(miss rate {r['miss_rate']:.3f}; target >= 10M/s)")




def simulator_speed() -> None:
    import numpy as np

    from moelab.placement import policies
    from moelab.placement import simulator as sim

    rng = np.random.default_rng(0)
    hot = rng.poisson(np.geomspace(300, 1, 256), size=(8192, 58, 256)).astype(np.float32)
    spec = sim.SimSpec(devices=32, slots_per_device=9, window=1024, interval=1024)
    t0 = time.perf_counter()
    base = sim.simulate(hot, None, spec)
    t1 = time.perf_counter()
    res = sim.simulate(hot, policies.eplb_policy(spec), spec)
    t2 = time.perf_counter()
    print(f"simulator, Default: {t1 - t0:.1f} s (mean PAR {base['mean_par']:.2f})")
    print(f"simulator, EPLB every 1024: {t2 - t1:.1f} s (mean PAR {res['mean_par']:.2f}, "
          f"{res['transmit']} slots moved; target < 60 s)")


if __name__ == "__main__":
    main()
    simulator_speed()
