import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start, write_parquet

log = start(snakemake)

import polars as pl

from moelab import plots, tables
from moelab.placement import plots as placement_plots
from moelab.placement.decision import DecisionSpec, summary
from moelab.placement.dynamic_grid import CellSpec
from moelab.placement.policy_specs import DynamicPolicies

i, o, p = snakemake.input, snakemake.output, snakemake.params
spec = DecisionSpec.from_config(p.decision)
pol = DynamicPolicies.from_config(p.policies)
cell = CellSpec.from_config(p.cell)
table = pl.concat([pl.read_parquet(f) for f in [*i.tables, *i.cells]], how="diagonal_relaxed").sort(
    "source", "ep", "redundant_per_device", "candidate", nulls_last=True)
write_parquet(table, o.table)
source = (f"the loads: {', '.join(table['source'].unique().sort())} (imported-*: users' own serving-engine dumps; "
          f"'model': a workload model's grid cell, its transmit counted for the full model); each cut in three at {p.split_fraction:g} and half the rest: the static placement fitted on the first "
          f"part, the choice made on the second, the numbers from the third; DS-EPLB every "
          f"{', '.join(map(str, spec.eplb_intervals))} iterations, moelab every {pol.moelab.call_interval}; "
          f"policy time per call as a redeployment delay ({cell.seconds_text()}); {pol.score.slot_bytes / 1e9:g} GB "
          f"per expert (placement.score.slot_bytes); CPU")
short = summary(table)
tables.write_html(short, o.html, "The decision: what to serve each imported load with, per EP size and budget",
                  source)
plots.save(placement_plots.decision(table, source), o.fig_svg, o.fig_png, o.fig_html)
for r in short.iter_rows(named=True):
    log.info("%s EP%d r=%g: %s", r["source"], r["ep"], r["redundant_per_device"], r["candidate"])
