"""What every Snakemake script does first: log to the rule's log file, pin thread counts."""

from __future__ import annotations

import logging
import os

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
                "POLARS_MAX_THREADS")


def start(snakemake) -> logging.Logger:  # noqa: ANN001 - the object Snakemake injects
    """Route logging to ``snakemake.log[0]`` and set thread counts from the rule's ``threads``
    (which come from the config, never from the machine). Call before heavy imports."""
    threads = str(max(1, int(getattr(snakemake, "threads", 1) or 1)))
    for var in _THREAD_VARS:
        os.environ[var] = threads
    logging.basicConfig(
        filename=snakemake.log[0] if snakemake.log else None,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    return logging.getLogger(f"moelab.{snakemake.rule}")
