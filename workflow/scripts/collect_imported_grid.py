import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start, write_parquet

log = start(snakemake)

import polars as pl

from moelab import tables
from moelab.placement.dynamic_grid import CellSpec, import_summary
from moelab.placement.policy_specs import DynamicPolicies

i, o = snakemake.input, snakemake.output
c = CellSpec.from_config(snakemake.params.cell)
pol = DynamicPolicies.from_config(snakemake.params.policies)
cells = pl.concat([pl.read_parquet(f) for f in [*i.cells, *i.users]]).sort("workload", "ep", "policy")
write_parquet(cells, o.table)
source = (f"users' own loads imported from serving-engine dumps ({', '.join(cells['workload'].unique().sort())}), "
          f"replayed as they are (no drift scale, no seed, nothing tuned on them); the grid's pinned policies: "
          f"DS-EPLB every {pol.eplb.call_interval} iterations, moelab every {pol.moelab.call_interval}; one redundant slot per "
          f"device; policy time per call as a redeployment delay ({c.seconds_text()})"
          + "".join(f"; {u} (a user's policy, {path}) at DS-EPLB's cadence, charged "
                    + (f"{s:g} s per call" if s is not None else "DS-EPLB's time per call")
                    for u, path, s in snakemake.params.users)
          + "; CPU")
ours = cells.filter(pl.col("policy") == "moelab")
ahead = int((ours["score_vs_eplb"] > 100).sum())
verdict = f"moelab ahead of DS-EPLB (score above 100) in {ahead} of {ours.height} imported cells"
log.info(verdict)
tables.write_html(import_summary(cells), o.html, "Imported loads: dynamic placement by workload and EP size",
                  f"{verdict}. {source}")
write_parquet(pl.concat([pl.read_parquet(f) for f in [*i.measured, *i.users_measured]])
              .sort("workload", "ep", "policy"), o.measured)
