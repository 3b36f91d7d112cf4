"""What every Snakemake script does first: log to the rule's log file, pin thread counts."""

from __future__ import annotations

import logging
import os
import sys

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
                "POLARS_MAX_THREADS", "RAYON_NUM_THREADS")


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
    logger = logging.getLogger(f"moelab.{snakemake.rule}")
    previous = sys.excepthook

    def log_uncaught(kind, value, tb) -> None:  # noqa: ANN001 - the log file says why a job failed
        logger.error("job failed", exc_info=(kind, value, tb))
        previous(kind, value, tb)

    sys.excepthook = log_uncaught
    return logger


def torch_threads(n: int) -> None:
    """Pin torch's intra- and inter-op threads (reproducible weights need a fixed count)."""
    import torch

    torch.set_num_threads(max(1, int(n)))
    try:
        torch.set_num_interop_threads(max(1, int(n)))
    except RuntimeError:  # already set once in this process
        pass
