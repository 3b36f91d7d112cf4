"""Pack/combine throughput of moelab's vectorised dispatch against a straightforward per-expert loop,
measured side by side in one run (medians, one thread). Target: at least 5x at E=256, T=16k.

Both sides compute the same thing from the same assignment (the rows assert it): pack ``[T, d]`` tokens
into ``[E, C, d]`` expert buffers at capacity ``ceil(CF * T * k / E)``, then combine ``[E, C, d]`` outputs
back into ``[T, d]`` with the kept weights. Timed: ours = assign + pack + combine; the loop = the same assign
+ pack_loop + combine_loop. Routing: top-k of gaussian logits and of a power-law (alpha 1.2) profile.

    .venv/bin/python benchmarks/bench_routing.py [--repeats 7] [--hidden 256]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main() -> None:
    import numpy as np
    import torch

    from moelab.kernels.timing import cpu_name, keep_freed_memory, measure
    from moelab.routing.capacity_sweep import gaussian_experts
    from moelab.routing.dispatch import assign, capacity, combine, combine_loop, pack, pack_loop

    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--hidden", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(1)
    keep_freed_memory()
    print(f"pack + combine on {cpu_name()}, 1 thread, width {args.hidden}, CF 1.25; medians of "
          f"{args.repeats} calls")
    print(f"{'routing':<14} {'E':>4} {'k':>2} {'T':>6}  {'ours ms':>8} {'loop ms':>8}  {'speedup':>7}")
    rng = np.random.default_rng(0)
    for E, k, T in ((64, 2, 4096), (256, 4, 4096), (256, 4, 16384), (256, 8, 16384)):
        profile = (np.arange(1, E + 1) ** -1.2)[rng.permutation(E)]
        for name in ("gaussian", "powerlaw-1.2"):
            if name == "gaussian":
                ex = gaussian_experts(E, k, T, seed=1, draw=0)
            else:  # k distinct experts per token drawn from the profile (Gumbel top-k)
                ex = np.argsort(-(np.log(profile) + rng.gumbel(size=(T, E))), axis=1)[:, :k]
            experts = torch.from_numpy(ex.astype(np.int64))
            weights = torch.softmax(torch.randn(T, k), dim=1)
            x = torch.randn(T, args.hidden)
            cap = capacity(1.25, T, k, E)
            a = assign(experts, weights, E, cap)
            assert torch.equal(pack(x, a), pack_loop(x, a))
            y = torch.randn(E, cap, args.hidden)
            assert torch.allclose(combine(y, a), combine_loop(y, a), atol=1e-5)

            def ours() -> torch.Tensor:
                b = assign(experts, weights, E, cap)
                return combine(pack(x, b), b)

            def loop() -> torch.Tensor:
                b = assign(experts, weights, E, cap)
                return combine_loop(pack_loop(x, b), b)

            t_ours = float(np.median(measure(ours, "cpu", 1, args.repeats)[0]))
            t_loop = float(np.median(measure(loop, "cpu", 1, args.repeats)[0]))
            target = "  (target >= 5x)" if (E, T) == (256, 16384) else ""
            print(f"{name:<14} {E:>4} {k:>2} {T:>6}  {t_ours:>8.2f} {t_loop:>8.2f}  {t_loop / t_ours:>6.1f}x{target}")


if __name__ == "__main__":
    main()
