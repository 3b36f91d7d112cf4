import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start, write_parquet

log = start(snakemake)

from moelab.placement import submission
from moelab.placement.dynamic_grid import CellSpec, evaluate_cell
from moelab.placement.policy_specs import DynamicPolicies
from moelab.placement.workload_fit import read_model

p, o, w = snakemake.params, snakemake.output, snakemake.wildcards
cell = CellSpec.from_config(p.cell)
pol = DynamicPolicies.from_config(p.policies)
model = read_model(snakemake.input.model)
ep, drift, seed = int(w.ep), float(w.drift), int(w.seed)
written = submission.load(snakemake.input.submission)  # moelab as the competition scores it: the file a user uploads
tables = evaluate_cell(model, cell, pol, ep, drift, seed, delays=("modelled", "measured"), submission=written,
                       workload=w.workload)
for kind, path in (("modelled", o.cell), ("measured", o.measured)):
    write_parquet(tables[kind], path)
    for row in tables[kind].iter_rows(named=True):
        log.info("%s %s EP%d drift x%g seed %d %s: PAR %.4f (bound %.4f), %d slots moved, score %.1f, "
                 "%.3f s per call; the competition's score %.1f", kind, w.workload, ep, drift, seed, row["policy"],
                 row["mean_par"], row["bound_par"], row["transmit"], row["score_vs_eplb"], row["seconds_per_call"],
                 row["competition_score"])
