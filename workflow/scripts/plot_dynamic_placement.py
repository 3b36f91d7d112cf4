import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start, write_parquet

log = start(snakemake)

import polars as pl

from moelab import plots, tables
from moelab.placement import plots as placement_plots
from moelab.placement.dynamic_eval import DynamicSpec
from moelab.placement.policy_specs import DynamicPolicies

i, o = snakemake.input, snakemake.output
d = DynamicSpec.from_config(snakemake.params.dynamic)
pol = DynamicPolicies.from_config(snakemake.params.policies)
every = f"DS-EPLB every {pol.eplb.call_interval} iterations, moelab every {pol.moelab.call_interval}"
summary = pl.concat([pl.read_parquet(f) for f in i.summaries], how="diagonal_relaxed")
timeline = pl.concat([pl.read_parquet(f) for f in i.timelines], how="diagonal_relaxed")
write_parquet(summary, o.table)
source = (f"hotness of captured traces (CPU capture), {d.devices} devices with {d.redundant_slots} redundant "
          f"slot(s) each; {every}; modelled time = {pol.score.par_weight:g} x PAR + slots x "
          f"{pol.score.slot_bytes:,} B / {pol.score.bandwidth:.3g} B/s")
if d.nodes > 1:
    source += f"; hierarchical: {d.expert_groups} expert groups on {d.nodes} nodes"
if d.oracle:
    source += "; the oracle sees the coming window (a bound, not a policy)"
tables.write_html(summary, o.html, "Dynamic placement: Default, DS-EPLB and moelab", source)
plots.save(placement_plots.par_timeline(timeline, source), o.fig_svg, o.fig_png, o.fig_html)
sweeps = pl.concat([pl.read_parquet(f) for f in i.sweeps], how="diagonal_relaxed")
plots.save(placement_plots.dynamic_frontier(sweeps, source), o.frontier_svg, o.frontier_png, o.frontier_html)
slots = pl.concat([pl.read_parquet(f) for f in i.slots], how="diagonal_relaxed")
write_parquet(slots, o.slots_table)
slots_source = (f"hotness of captured traces (CPU capture); {every}; each point scored against DS-EPLB on the "
                f"same devices and slots")
tables.write_html(slots, o.slots_table_html, "Dynamic placement by devices and redundant slots per device",
                  slots_source)
plots.save(placement_plots.dynamic_slots(slots, slots_source), o.slots_svg, o.slots_png, o.slots_html)
