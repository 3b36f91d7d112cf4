import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start, write_parquet

log = start(snakemake)

from moelab import load_source
from moelab.placement import submission
from moelab.placement.dynamic_grid import CellSpec, evaluate_import
from moelab.placement.policy_specs import DynamicPolicies

p, i, o = snakemake.params, snakemake.input, snakemake.output
src = load_source.read(i.source, *i.meta)
cell = CellSpec.from_config(p.cell)
pol = DynamicPolicies.from_config(p.policies)
eplb_first = pol.eplb.call_interval  # each policy is first called once its own interval has passed
first = min(eplb_first, pol.moelab.call_interval)
if src.hot.shape[0] <= first:
    log.warning("%s: %d iterations, not more than the first call at %d: no policy redeploys", src.source_id,
                src.hot.shape[0], first)
elif src.hot.shape[0] <= eplb_first:
    log.warning("%s: %d iterations, not more than DS-EPLB's first call at %d: only moelab redeploys",
                src.source_id, src.hot.shape[0], eplb_first)
written = submission.load(i.submission)  # moelab as the competition scores it: the file a user uploads
tables = evaluate_import(src.hot, cell, pol, p.eps, src.source_id, submission=written)
for kind, path in (("modelled", o.cell), ("measured", o.measured)):
    write_parquet(tables[kind], path)
    for row in tables[kind].iter_rows(named=True):
        log.info("%s %s EP%d %s: PAR %.4f (bound %.4f), %d slots moved, score %.1f", kind, src.source_id,
                 row["ep"], row["policy"], row["mean_par"], row["bound_par"], row["transmit"],
                 row["score_vs_eplb"])
