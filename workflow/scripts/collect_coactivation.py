import _moelab_path  # noqa: F401 - puts this checkout's src/ on sys.path
from moelab.jobs import start, write_parquet

log = start(snakemake)

import polars as pl

from moelab import provenance, tables

frame = pl.concat([pl.read_parquet(p) for p in snakemake.input.layers], how="diagonal_relaxed")
write_parquet(frame, snakemake.output.table)
tables.write_html(tables.coactivation_summary(frame), snakemake.output.html, "Co-activation per trace",
                  "mean over layers; split documents: groups fitted on some documents, scored on the others "
                  "(score_tokens; each corpus part split alike); gain = their within-group pair share / "
                  "both-margins null; gain_heldout_part / gain_train_part: scored on the documents of the corpus "
                  "part the embedded checkpoint never trained on / trained on; split document halves (too few "
                  "documents): fitted on the first half of each document, scored on the second. Sources: "
                  f"{provenance.of_rows(frame)}")
