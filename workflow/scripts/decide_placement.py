import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start, write_parquet

log = start(snakemake)

from pathlib import Path

import polars as pl

from moelab import load_source
from moelab.exports.maps import physical_to_logical
from moelab.exports.placements import write_map
from moelab.placement.decision import DecisionSpec, decide, engine_settings
from moelab.placement.dynamic_grid import CellSpec, GridSpec
from moelab.placement.policy_specs import DynamicPolicies
from moelab.placement.workload_fit import read_model

p, i, o = snakemake.params, snakemake.input, snakemake.output
spec = DecisionSpec.from_config(p.decision)
cell = CellSpec.from_config(p.cell)
pol = DynamicPolicies.from_config(p.policies)


def decide_all(hot, eps, keys, full_layers=None, folder=None, layers=None):  # noqa: ANN001, ANN201
    """Every EP size and budget; with ``folder``, each static placement in the engines' files there."""
    rows = []
    for ep in eps:
        seconds = {name: cell.seconds(name, ep) for name in ("DS-EPLB", "moelab")}
        for budget in spec.redundant_per_device:
            found, static = decide(hot, pol, ep, budget, p.split_fraction, spec.eplb_intervals, seconds,
                                   cell.iteration_seconds, keys, full_layers, spec.min_gain)
            files = None
            if static is not None and folder is not None:  # read back before the job ends
                names = write_map(folder, f"ep{ep}-r{budget:g}-static", physical_to_logical(static), hot.shape[2],
                                  ep, layers)
                files = {n.split(".")[-2]: str(folder / n) for n in names}
            for r in found:
                rows.append({**r, **engine_settings(r, hot.shape[2], files)})
            chosen = next((r for r in found if r["chosen"]), None)
            if chosen:
                log.info("%s EP%d, %g redundant per device: %s (PAR %.3f reported, %.1f GB/h moved)%s",
                         keys["source"], ep, budget, chosen["candidate"], chosen["par_report"],
                         chosen["gb_per_hour"], "" if chosen["holds"] else "; not the best on the reported part")
    return rows


if snakemake.rule == "decide_grid":  # every grid cell's workload model, in one job (each takes seconds)
    models = dict(zip(p.workloads, (read_model(f) for f in i.models)))
    rows = []
    for name in p.cells:
        k = GridSpec.cell_keys(name)
        fitted = models[k["workload"]]
        hot = cell.model(fitted, k["drift_scale"]).generate(k["seed"])
        keys = {"source": f"{k['workload']} model, x{k['drift_scale']:g}, seed {k['seed']}"}
        rows += decide_all(hot, [k["ep"]], keys, full_layers=fitted.layers)
else:
    src = load_source.read(i.source)
    E = src.hot.shape[2]
    eps = [ep for ep in p.eps if E % ep == 0 and ep <= E]
    if not eps:
        raise ValueError(f"{src.source_id}: none of placement.grid.eps {p.eps} splits its {E} experts")
    folder = Path(o.files)
    folder.mkdir(parents=True, exist_ok=True)
    rows = decide_all(src.hot, eps, {"source": src.source_id}, folder=folder, layers=list(src.layer_index))
write_parquet(pl.DataFrame(rows, infer_schema_length=None), o.table)
