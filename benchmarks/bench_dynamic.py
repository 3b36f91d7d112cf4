"""moelab's dynamic placement policy against DeepSeek's EPLB (moelab's implementation), side by side in one run.

Both policies run as the config's ``placement.eplb`` and ``placement.policy`` blocks set them (default:
config/full.yaml over config/config.yaml), the blocks every dynamic evaluation of the pipeline runs, on hotness
from a fitted workload model (``results/placement/workloads/ShareGPT/model.json`` when the pipeline has written
it, ``--model`` for another; otherwise the shared workload is fitted here first, with the config's
``placement.workloads``).

1. Time per call at the DS-R1 EP32 shape (58 layers x 256 experts onto 32 devices x 9 slots; ``--ep`` for
   other EP sizes): each policy called on the same windows; median and spread over ``--calls`` calls, and the
   ratio. These medians, per EP size, are what ``placement.grid.seconds_per_call`` pins.
2. With ``--cells``: grid cells (``ep:drift:seed``, default the tuning cell) run with measured delays, as
   ``results/bench/placement/grid/`` does, next to the modelled-delay run.

    .venv/bin/python benchmarks/bench_dynamic.py [--calls 9] [--ep 32 64 128 256] [--cells 32:1:1 256:1:1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def load_config(paths: list[str]) -> dict:
    import yaml

    config: dict = {}
    for p in paths:
        _merge(config, yaml.safe_load((ROOT / p).read_text()))
    return config


def _merge(base: dict, over: dict) -> None:
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v


def main() -> None:
    import numpy as np

    from moelab.placement import competition_api
    from moelab.placement import simulator as sim
    from moelab.placement import workload_fit
    from moelab.placement.dynamic_grid import CellSpec, evaluate_cell
    from moelab.placement.policy_specs import DynamicPolicies, SubmissionSpec

    ap = argparse.ArgumentParser()
    ap.add_argument("--config", nargs="+", default=["config/config.yaml", "config/full.yaml"])
    ap.add_argument("--model", default="results/placement/workloads/ShareGPT/model.json")
    ap.add_argument("--calls", type=int, default=9)
    ap.add_argument("--ep", type=int, nargs="+", default=[32], help="EP sizes to time (each its own medians)")
    ap.add_argument("--cells", nargs="*", default=None, help="ep:drift_scale:seed cells to run with measured delays")
    args = ap.parse_args()
    config = load_config(args.config)
    grid = config["placement"]["grid"]
    cell = CellSpec.from_config(grid)
    pol = DynamicPolicies.from_config(config["placement"])
    model_file = ROOT / args.model
    if model_file.exists():
        model = workload_fit.read_model(model_file)
        print(f"model: {args.model}")
    else:
        spec = workload_fit.WorkloadsSpec.from_config(config["placement"]["workloads"])
        print(f"no {args.model}: fitting {spec.shared} first ({spec.max_evaluations} evaluations)...", flush=True)
        os.chdir(ROOT)  # the published-cells path is the project's
        model, _ = workload_fit.fit(spec, spec.shared, spec.check_published()[spec.shared], None)
    print(f"  {model}")
    p, ew = pol.moelab, pol.eplb.window
    hot = model.generate(1).astype(np.float64)
    E = model.experts
    med: dict[int, dict[str, float]] = {}
    for D in args.ep:
        spec, eplb_spec = (pol.sim_spec(name, D, E // D + 1) for name in ("moelab", "DS-EPLB"))
        current = sim.contiguous(model.layers, E, D, E // D + 1)
        ours, eplb = pol.build("moelab", spec, model.iterations), pol.build("DS-EPLB", eplb_spec, model.iterations)
        times: dict[str, list[float]] = {"moelab": [], "DS-EPLB": []}
        for c in range(args.calls):
            end = ew + c * p.call_interval
            for name, policy, w in (("moelab", ours, p.window), ("DS-EPLB", eplb, ew)):
                window = hot[max(0, end - w):end]
                t0 = time.perf_counter()
                tables, _ = policy(window, current)
                times[name].append(time.perf_counter() - t0)
                if name == "moelab":
                    current = tables
        print(f"\nper call, {model.layers} layers x {E} experts onto {D} devices x {E // D + 1} slots, "
              f"{args.calls} calls (policy: {p}):")
        med[D] = {}
        for name, ts in times.items():
            med[D][name] = statistics.median(ts)
            print(f"  {name:20s} median {med[D][name] * 1e3:8.1f} ms   min {min(ts) * 1e3:8.1f}   "
                  f"max {max(ts) * 1e3:8.1f}")
        print(f"  ratio moelab / DS-EPLB (moelab's implementation): {med[D]['moelab'] / med[D]['DS-EPLB']:.2f}")
        # the submission (placement.submission), as the evaluator calls it: every DS-EPLB window, from the
        # competition's initial tables, through the competition API
        competition_api.configure(SubmissionSpec.from_config(config["placement"]["submission"]).settings())
        ts = []
        for c in range(min(args.calls, model.iterations // ew)):
            window = hot[c * ew:(c + 1) * ew]
            t0 = time.perf_counter()
            competition_api.rebalance(window, D, D)
            ts.append(time.perf_counter() - t0)
        competition_api.reset()
        med[D]["submission"] = statistics.median(ts)
        print(f"  {'submission':20s} median {med[D]['submission'] * 1e3:8.1f} ms   min {min(ts) * 1e3:8.1f}   "
              f"max {max(ts) * 1e3:8.1f}  ({len(ts)} calls, every {ew} iterations, the first from the "
              f"competition's initial tables)")
    print("\nas placement.grid.seconds_per_call (medians, seconds):")
    for name in ("DS-EPLB", "moelab", "submission"):
        print(f"  {name}: {{{', '.join(f'{D}: {med[D][name]:.3g}' for D in args.ep)}}}")
    cells = args.cells if args.cells is not None else []
    for c in cells:
        ep, drift, seed = c.split(":")
        t0 = time.perf_counter()
        tables = evaluate_cell(model, cell, pol, int(ep), float(drift), int(seed), delays=("modelled", "measured"))
        print(f"\ncell EP{ep} drift x{drift} seed {seed} ({time.perf_counter() - t0:.0f} s):")
        for kind, t in tables.items():
            print(f"  {kind} delays:")
            for r in t.iter_rows(named=True):
                print(f"    {r['policy']:8s} PAR {r['mean_par']:.4f} (after first call "
                      f"{r['mean_par_after_first_call']:.4f}, bound {r['bound_par']:.4f})  moved {r['transmit']:7d}  "
                      f"{r['seconds_per_call']:.3f} s/call  score {r['score_vs_eplb']:6.1f}  "
                      f"gap closed {r['gap_closed']:.2f}")

if __name__ == "__main__":
    main()
