"""Speed of synthetic assignment, side by side in one run (medians; ratios printed).

One layer of 1M tokens, k=8, 256 experts (alpha 1.2 loads). Baseline: numpy writing an output
array of the same size in the (k, tokens) layout. Measured at several concurrencies because the
per-iteration work is O(E): with C tokens per iteration there are T/C iterations, so the O(E)
term is (T/C) * E, which equals half the output size at C=64 (the loads table itself is then as
large as the assignment). The token-by-token loop is timed on 1/64 of the tokens and scaled
linearly (its cost is per token).

    .venv/bin/python benchmarks/bench_synthetic.py [--tokens 1048576] [--repeats 7]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from moelab.synthetic import assign as A
from moelab.synthetic import loads as L
from moelab.synthetic import powerlaw


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up (numba compile / page faults)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=1 << 20)
    ap.add_argument("--experts", type=int, default=256)
    ap.add_argument("--top-k", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    T, E, k = args.tokens, args.experts, args.top_k
    rng = np.random.default_rng(0)
    base = median_time(lambda: np.full((k, T), 7, np.uint16), args.repeats)
    print(f"one layer: {T} tokens, k={k}, E={E}; baseline numpy write of [k, T] u16: {base * 1e3:.2f} ms")
    print(f"{'concurrency':>12} {'blocked[k,T]':>13} {'shuffled[T,k]':>14} {'blocked->[T,k]':>15} "
          f"{'token loop':>11} {'loop/shuffled':>14}   targets: blocked<=3x, shuffled & conversion<=60x")
    for C in (64, 1024, 16384, T):
        I = T // C
        pi = L.cap_profile(np.broadcast_to(powerlaw.profile(rng, 1.2, E, 4096)[0], (I, E)), k)
        loads = L.draw_multinomial(rng, pi, C, k)
        blocked = median_time(lambda: A.assign_blocked_kT(loads, C, k), args.repeats)
        shuffled = median_time(lambda: A.assign(loads, C, k, "shuffled", rng), args.repeats)
        kT = A.assign_blocked_kT(loads, C, k)
        convert = median_time(lambda: np.ascontiguousarray(kT.T), args.repeats)
        # The loop costs the same per token: time 1/64 of the tokens (whole iterations, or one
        # smaller batch of the same profile when the stream is a single iteration) and scale by 64.
        if I >= 64:
            sub, c_sub = loads[: I // 64], C
        else:
            c_sub = max(k, C // 64)
            sub = L.draw_multinomial(rng, pi[:1], c_sub, k)
        loop = median_time(lambda: A.assign_token_loop(sub, c_sub, k), 1) * (T / (sub.shape[0] * c_sub))
        print(f"{C:>12} {blocked / base:>12.1f}x {shuffled / base:>13.1f}x {convert / base:>14.1f}x "
              f"{loop / base:>10.0f}x {loop / shuffled:>13.0f}x")
    print("ratios are time / baseline write, medians of", args.repeats, "runs; loop scaled x64 from 1/64 of the tokens")


if __name__ == "__main__":
    main()
