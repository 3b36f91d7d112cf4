"""Choosing moelab's dynamic policy settings on the grid's tuning cell, and only there.

The pinned grid (``placement.grid`` in config/full.yaml) names one tuning cell (EP size, drift scale, seed);
every other cell is held out. This script scores candidate settings of ``placement.policy`` (moelab's policy,
which every dynamic evaluation runs) on that cell alone, against DS-EPLB with the grid's modelled seconds per call, and prints them best first, with the time per
call measured here. The chosen settings go into the config by hand; the held-out cells are then run once by the
pipeline, never by this script.

    .venv/bin/python benchmarks/tune_dynamic.py [--set max_moves=0,16 call_interval=128,256 ...]
"""

from __future__ import annotations

import argparse
import itertools
import json
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
    from moelab.placement.hotness_model import HotnessModel
    from moelab.placement.policy_specs import DynamicPolicies

    ap = argparse.ArgumentParser()
    ap.add_argument("--config", nargs="+", default=["config/config.yaml", "config/full.yaml"])
    ap.add_argument("--model", default="results/placement/calibration/model.json")
    ap.add_argument("--set", nargs="*", default=["max_moves=0,16", "accept=target,pays"],
                    help="policy key=v1,v2,... (the product of all is tried)")
    args = ap.parse_args()
    config = load_config(args.config)
    grid = GridSpec.from_config(config["placement"]["grid"])
    cell: CellSpec = grid.cell
    pol = DynamicPolicies.from_config(config["placement"])
    t = grid.tuning
    model = HotnessModel(**json.loads((ROOT / args.model).read_text())["model"])
    m = cell.model(model, t["drift_scale"])
    hot = m.generate(t["seed"])
    specs = sim_specs(cell, pol, m.experts, t["ep"], measured=False)
    eplb = sim.simulate(hot, pol.build("DS-EPLB", specs["DS-EPLB"], m.iterations), specs["DS-EPLB"])
    print(f"tuning cell EP{t['ep']} drift x{t['drift_scale']} seed {t['seed']} ({m.layers} layers, {m.iterations} "
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


if __name__ == "__main__":
    main()
