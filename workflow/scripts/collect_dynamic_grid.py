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
m = json.loads(open(i.model).read())["model"]
cells = grid.roles(pl.concat([pl.read_parquet(f) for f in i.cells]).sort("ep", "drift_scale", "seed", "policy"))
write_parquet(cells, o.table)
t, c = grid.tuning, grid.cell
source = (f"synthetic hotness from the model calibrated on the published DS-R1 ShareGPT table (a model of that "
          f"trace, not the trace): {c.layers or m['layers']} layers x {m['experts']} experts, "
          f"{c.iterations or m['iterations']} iterations, seeds {', '.join(map(str, grid.seeds))}; one redundant "
          f"slot per device; DS-EPLB every {pol.eplb.call_interval} iterations, moelab every {pol.moelab.call_interval}; "
          f"policy time per call as a redeployment delay ({c.seconds_text()}; {c.seconds_source}); each policy "
          f"first called once its interval has passed; tuning cell EP{t['ep']}, "
          f"drift x{t['drift_scale']:g}, seed {t['seed']}, every other cell held out; CPU")
verdict = dynamic_grid.verdict(cells)
log.info(verdict)
tables.write_html(summary(cells), o.html, "Dynamic placement grid: score vs DS-EPLB by policy, drift and EP size",
                  f"{verdict}. {source}")
plots.save(placement_plots.grid_scores(cells, source), o.scores_svg, o.scores_png, o.scores_html)
plots.save(placement_plots.grid_frontier(cells, source), o.frontier_svg, o.frontier_png, o.frontier_html)
measured = grid.roles(pl.concat([pl.read_parquet(f) for f in i.measured]).sort("ep", "drift_scale", "seed", "policy"))
write_parquet(measured, o.measured)
