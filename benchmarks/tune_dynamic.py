"""Choosing moelab's dynamic policy settings on the grid's tuning cell, and only there.

The pinned grid (``placement.grid`` in config/full.yaml) names one tuning cell (workload, EP size, drift scale, seed);
every other cell is held out. This script scores candidate settings of ``placement.policy`` (moelab's policy,
which every dynamic evaluation runs) on that cell alone, against DS-EPLB with the grid's modelled seconds per call, and prints them best first, with the time per
call measured here. The chosen settings go into the config by hand; the held-out cells are then run once by the
pipeline, never by this script.

    .venv/bin/python benchmarks/tune_dynamic.py [--set max_moves=0,16 call_interval=128,256 ...]

With ``--competition`` it tunes ``placement.submission`` instead: each candidate is run through the competition's
loop (:mod:`moelab.placement.competition`) at the evaluator's cadence (DS-EPLB's call interval), through the
competition API as the written submission runs it, on the same tuning cell, and scored against DS-EPLB there.

    .venv/bin/python benchmarks/tune_dynamic.py --competition --set halflife=256,1024 max_moves=0,8
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> None:
    from bench_dynamic import load_config

    from moelab.placement import simulator as sim
    from moelab.placement.dynamic_grid import CellSpec, GridSpec, sim_specs
    from moelab.placement.policy_specs import DynamicPolicies
    from moelab.placement.workload_fit import read_model

    ap = argparse.ArgumentParser()
    ap.add_argument("--config", nargs="+", default=["config/config.yaml", "config/full.yaml"])
    ap.add_argument("--model", default=None, help="the tuning workload's model file (default: the pipeline's)")
    ap.add_argument("--set", nargs="*", default=["max_moves=0,16", "accept=target,pays"],
                    help="policy key=v1,v2,... (the product of all is tried)")
    ap.add_argument("--competition", action="store_true",
                    help="tune placement.submission in the competition's loop at the evaluator's cadence")
    args = ap.parse_args()
    if args.competition:
        return tune_submission(args)
    config = load_config(args.config)
    grid = GridSpec.from_config(config["placement"]["grid"])
    cell: CellSpec = grid.cell
    pol = DynamicPolicies.from_config(config["placement"])
    t = grid.tuning
    model = read_model(ROOT / (args.model or f"results/placement/workloads/{t['workload']}/model.json"))
    m = cell.model(model, t["drift_scale"])
    hot = m.generate(t["seed"])
    specs = sim_specs(cell, pol, m.experts, t["ep"], measured=False)
    eplb = sim.simulate(hot, pol.build("DS-EPLB", specs["DS-EPLB"], m.iterations), specs["DS-EPLB"])
    print(f"tuning cell {t['workload']} EP{t['ep']} drift x{t['drift_scale']} seed {t['seed']} ({m.layers} layers, {m.iterations} "
          f"iterations): DS-EPLB PAR {eplb['mean_par']:.4f}, {eplb['transmit']} slots moved")
    grid_values = []
    for item in args.set:
        key, values = item.split("=")
        kind = type(getattr(pol.moelab, key))
        grid_values.append([(key, kind(v)) for v in values.split(",")])
    rows = []
    for combo in itertools.product(*grid_values):
        policy = replace(pol.moelab, **dict(combo))
        spec = replace(specs["moelab"], interval=policy.call_interval, window=policy.window)
        t0 = time.perf_counter()
        r = sim.simulate(hot, policy.build(spec, m.iterations), spec)
        per_call = r["policy_wall_s"] / max(r["calls"], 1)
        rows.append((sim.score(r, eplb), r["mean_par"], r["transmit"], per_call, dict(combo)))
        print(f"  {dict(combo)}: score {rows[-1][0]:.1f}, PAR {r['mean_par']:.4f}, moved {r['transmit']}, "
              f"{per_call * 1e3:.0f} ms per call ({time.perf_counter() - t0:.0f} s)", flush=True)
    print("\nbest first:")
    for score, par, moved, per_call, combo in sorted(rows, key=lambda r: -r[0]):
        print(f"  {score:6.1f}  PAR {par:.4f}  moved {moved:7d}  {per_call * 1e3:6.0f} ms/call  {combo}")


def tune_submission(args: argparse.Namespace) -> None:
    """``--competition``: candidate ``placement.submission`` settings, each in the competition's loop on the tuning
    cell at DS-EPLB's interval, scored against DS-EPLB there (both delayed by the config's seconds per call)."""
    from bench_dynamic import load_config

    from moelab.placement import competition, competition_api
    from moelab.placement.dynamic_grid import GridSpec
    from moelab.placement.policy_specs import DynamicPolicies, SubmissionSpec
    from moelab.placement.workload_fit import read_model

    config = load_config(args.config)
    grid = GridSpec.from_config(config["placement"]["grid"])
    pol = DynamicPolicies.from_config(config["placement"])
    base = SubmissionSpec.from_config(config["placement"]["submission"])
    t, cell = grid.tuning, grid.cell
    model = read_model(ROOT / (args.model or f"results/placement/workloads/{t['workload']}/model.json"))
    m = cell.model(model, t["drift_scale"])
    hot = m.generate(t["seed"]).astype("float64")
    hot[hot == 0] = 1.0
    ep, interval = t["ep"], pol.eplb.call_interval
    full = model.layers if m.layers < model.layers else None

    def delay(name: str):  # noqa: ANN202
        return lambda call, seconds: competition.delay_iterations(cell.seconds(name, ep))

    eplb = competition.simulate(hot, lambda w: competition.ds_eplb(w, ep, ep), interval, devices=ep,
                                delay=delay("DS-EPLB"), full_layers=full)
    scale = (full or m.layers) / m.layers

    def time_of(r: dict) -> float:
        return competition.modelled_time(r["mean_par"], r["transmit"] * scale)

    print(f"tuning cell {t['workload']} EP{ep} x{t['drift_scale']:g} seed {t['seed']} ({m.layers} of {model.layers} "
          f"layers, {m.iterations} iterations), the competition's loop every {interval}: DS-EPLB PAR "
          f"{eplb['mean_par']:.4f}, {eplb['transmit']} slots moved")
    grid_values = []
    for item in args.set:
        key, values = item.split("=")
        kind = type(getattr(base, key))
        grid_values.append([(key, kind(v)) for v in values.split(",")])
    rows = []
    for combo in itertools.product(*grid_values):
        spec = replace(base, **dict(combo))
        competition_api.configure(spec.settings())
        competition_api.stand_for(full)
        t0 = time.perf_counter()
        r = competition.simulate(hot, lambda w: competition_api.rebalance(w, ep, ep), interval, devices=ep,
                                 delay=delay("submission"), full_layers=full)
        score = 100 * time_of(eplb) / time_of(r)
        rows.append((score, r["mean_par"], r["transmit"], dict(combo)))
        print(f"  {dict(combo)}: score {score:.1f}, PAR {r['mean_par']:.4f}, moved {r['transmit']} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    print("\nbest first:")
    for score, par, moved, combo in sorted(rows, key=lambda r: -r[0]):
        print(f"  {score:6.1f}  PAR {par:.4f}  moved {moved:7d}  {combo}")


if __name__ == "__main__":
    main()
