"""moelab's dynamic placement policy against DeepSeek EPLB, side by side in one run.

Hotness is generated directly (no token trace): power law alpha 1.2 per layer with a frozen slow
random-walk drift, concurrency 1024, top-8; 32 devices with one redundant slot each; DS-R1 score
constants (60 s per unit of mean PAR, 88,080,384-byte slots over 900 GB/s). EPLB (global) is
called every 1024 iterations on a 1024-iteration window, as pinned; moelab's policy, which moves
few slots per call, is called every 256 iterations on a 512-iteration window (half-life 128),
redeploying a layer only when the modelled time it saves exceeds its transfer time. Both start
from the contiguous Default placement and first act at iteration 1024. Hotness is cached under
/tmp between runs (it takes ~20 s per seed to generate).

    .venv/bin/python benchmarks/bench_dynamic.py [--layers 58] [--experts 256] [--iterations 8192] [--seeds 1 2 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def hotness(seed: int, layers: int, experts: int, iterations: int):  # noqa: ANN201
    from moelab.synthetic.scenarios import hotness, hotness_spec

    cfg = dict(alpha=1.2, experts=experts, top_k=8, concurrency=1024, iterations=iterations, layers=layers,
               walk_sigma=0.02, walk_reversion=0.001)
    return hotness(hotness_spec(**cfg, reference_tokens=4096, seed=seed))


def main() -> None:
    import numpy as np

    from moelab.placement import policies
    from moelab.placement import simulator as sim

    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=58)
    ap.add_argument("--experts", type=int, default=256)
    ap.add_argument("--iterations", type=int, default=8192)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--interval", type=int, default=256, help="moelab policy call cadence")
    ap.add_argument("--window", type=int, default=512)
    ap.add_argument("--halflife", type=float, default=128)
    ap.add_argument("--accept", default="pays", choices=["pays", "target"])
    ap.add_argument("--min-gain", type=float, default=0.01)
    ap.add_argument("--horizon-calls", type=float, default=1.0)
    ap.add_argument("--max-moves", type=int, default=16, help="> 0: the greedy least-move plan competes")
    args = ap.parse_args()
    base = sim.SimSpec(devices=32, slots_per_device=args.experts // 32 + 1, window=1024, interval=1024)
    ours = sim.SimSpec(devices=32, slots_per_device=args.experts // 32 + 1, window=args.window,
                       interval=args.interval, first_call=1024)
    rows = []
    for seed in args.seeds:
        t0 = time.perf_counter()
        cached = Path(f"/tmp/moelab-hotness-{seed}-{args.layers}-{args.experts}-{args.iterations}.npy")
        if cached.exists():
            hot = np.load(cached)
        else:
            hot = hotness(seed, args.layers, args.experts, args.iterations)
            np.save(cached, hot)
        t1 = time.perf_counter()
        default = sim.simulate(hot, None, base)
        eplb = sim.simulate(hot, policies.eplb_policy(base), base)
        t2 = time.perf_counter()
        mine = sim.simulate(hot, policies.moelab_policy(ours, total_iterations=args.iterations,
                                                        halflife=args.halflife, accept=args.accept,
                                                        min_gain=args.min_gain,
                                                        horizon_calls=args.horizon_calls,
                                                        max_moves=args.max_moves), ours)
        t3 = time.perf_counter()
        for name, r in (("Default", default), ("DS-EPLB@1024", eplb), (f"moelab@{args.interval}", mine)):
            rows.append((seed, name, r["mean_par"], r["transmit"], r["modelled_time"], sim.score(r, eplb)))
            print(f"seed {seed} {name:13s} PAR {r['mean_par']:.3f}  moved {r['transmit']:7d}  "
                  f"T {r['modelled_time']:8.2f} s  score {sim.score(r, eplb):6.1f}")
        print(f"  (hotness {t1 - t0:.0f} s, Default+EPLB {t2 - t1:.0f} s, moelab {t3 - t2:.0f} s)")
    for name in ("Default", "DS-EPLB@1024", f"moelab@{args.interval}"):
        sel = [r for r in rows if r[1] == name]
        print(f"mean over seeds: {name:13s} PAR {np.mean([r[2] for r in sel]):.3f}  "
              f"score {np.mean([r[5] for r in sel]):6.1f}")


if __name__ == "__main__":
    main()
