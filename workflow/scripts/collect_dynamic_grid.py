import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start, write_parquet

log = start(snakemake)

import json

import polars as pl

from moelab import plots, tables
from moelab.placement import plots as placement_plots
from moelab.placement import dynamic_grid
from moelab.placement.dynamic_grid import GridSpec, summary
from moelab.placement.policy_specs import DynamicPolicies

i, o = snakemake.input, snakemake.output
grid = GridSpec.from_config(snakemake.params.grid)
pol = DynamicPolicies.from_config(snakemake.params.policies)
models = [json.loads(open(f).read()) for f in i.models]
order = ("workload", "ep", "drift_scale", "seed", "policy")
cells = grid.roles(pl.concat([pl.read_parquet(f) for f in [*i.cells, *i.users]]).sort(*order))
write_parquet(cells, o.table)
t, c = grid.tuning, grid.cell
shapes = "; ".join(f"{r['workload']} ({r['model_name']} on {r['dataset']}: {c.layers or r['model']['layers']} of "
                   f"{r['model']['layers']} layers x {r['model']['experts']} experts, "
                   f"{c.iterations or r['model']['iterations']} iterations)" for r in models)
source = (f"synthetic hotness from workload models fitted on published competition cells (models of those "
          f"traces, not the traces): {shapes}; seeds {', '.join(map(str, grid.seeds))}; one redundant "
          f"slot per device; DS-EPLB every {pol.eplb.call_interval} iterations, moelab every {pol.moelab.call_interval}; "
          f"policy time per call as a redeployment delay ({c.seconds_text()}; {c.seconds_source}); each policy "
          f"first called once its interval has passed; tuning cell {t['workload']} EP{t['ep']}, "
          f"drift x{t['drift_scale']:g}, seed {t['seed']}, every other cell held out"
          + "".join(f"; {u} (a user's policy, {path}) at DS-EPLB's cadence, charged "
                    + (f"{s:g} s per call" if s is not None else "DS-EPLB's time per call")
                    for u, path, s in snakemake.params.users)
          + "; CPU")
verdict = dynamic_grid.verdict(cells)
log.info(verdict)
tables.write_html(summary(cells), o.html, "Dynamic placement grid: score vs DS-EPLB by policy, drift and EP size",
                  f"{verdict}. {source}")
plots.save(placement_plots.grid_scores(cells, source), o.scores_svg, o.scores_png, o.scores_html)
plots.save(placement_plots.grid_frontier(cells, source), o.frontier_svg, o.frontier_png, o.frontier_html)
measured = grid.roles(pl.concat([pl.read_parquet(f) for f in [*i.measured, *i.users_measured]]).sort(*order))
write_parquet(measured, o.measured)
