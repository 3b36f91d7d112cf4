import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start, write_parquet

log = start(snakemake)

import polars as pl

from moelab import load_source
from moelab.placement import user_grid
from moelab.placement.dynamic_grid import CellSpec, GridSpec
from moelab.placement.policy_specs import DynamicPolicies
from moelab.placement.user_policies import UserPolicySpec
from moelab.placement.workload_fit import read_model

# One user's policy on every grid cell (rule user_policy_grid) or every imported load (user_policy_imported), each
# scored against the DS-EPLB rows of the cell's own table.
p, i, o = snakemake.params, snakemake.input, snakemake.output
spec = UserPolicySpec.from_config(p.entry, f"placement.policies.{snakemake.wildcards.name}")
cell = CellSpec.from_config(p.cell)
pol = DynamicPolicies.from_config(p.policies)
loaded = spec.load()
rows, like = [], None
if snakemake.rule == "user_policy_grid":
    models = dict(zip(p.workloads, (read_model(f) for f in i.models)))
    for name, modelled, measured in zip(p.cells, i.cells, i.measured):
        keys = GridSpec.cell_keys(name)
        fitted, ep = models[keys["workload"]], keys["ep"]
        hot, _ = cell.model(fitted, keys["drift_scale"]).generate_with_expected(keys["seed"])
        like = {"modelled": pl.read_parquet(modelled), "measured": pl.read_parquet(measured)}
        rows.append(user_grid.evaluate(spec, loaded, hot, cell, pol, ep, like, keys, full_layers=fitted.layers))
        log.info("%s %s: score %.1f vs DS-EPLB, %.1f vs the strongest; the competition's score %.1f", spec.name,
                 name, rows[-1]["modelled"]["score_vs_eplb"], rows[-1]["modelled"]["score_vs_strongest"],
                 rows[-1]["modelled"]["competition_score"])
else:
    for trace, source, modelled, measured in zip(p.imported, i.sources, i.cells, i.measured):
        src = load_source.read(source)
        cells = {"modelled": pl.read_parquet(modelled), "measured": pl.read_parquet(measured)}
        for ep in sorted(set(cells["modelled"]["ep"])):
            like = {kind: t.filter(pl.col("ep") == ep) for kind, t in cells.items()}
            rows.append(user_grid.evaluate(spec, loaded, src.hot, cell, pol, ep, like, {"workload": trace, "ep": ep}))
            log.info("%s %s EP%d: score %.1f vs DS-EPLB", spec.name, trace, ep, rows[-1]["modelled"]["score_vs_eplb"])
out = user_grid.frames(rows, like) if rows else {"modelled": pl.DataFrame(), "measured": pl.DataFrame()}
# written once every cell has run: a policy that fails anywhere leaves no table
write_parquet(out["modelled"], o.table)
write_parquet(out["measured"], o.measured)
