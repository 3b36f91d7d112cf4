"""What every Snakemake script does: log to the rule's log file, pin thread counts, write outputs atomically."""

from __future__ import annotations

import glob
import logging
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

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


def _remove_stale(path: Path, suffix: str) -> None:
    """Temporaries that a killed earlier attempt at this output left behind (one job owns an output)."""
    for old in path.parent.glob(f".{glob.escape(path.name)}.*{suffix}"):
        shutil.rmtree(old) if old.is_dir() else old.unlink(missing_ok=True)


def _usual_mode(path: Path, mode: int) -> None:
    """mkstemp/mkdtemp make 0600/0700: give the output the permissions a plain write would (umask applied)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, mode & ~mask)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path next to ``path`` that replaces it when the block ends without error.

    A job killed mid-write (even by SIGKILL) then leaves the old file or none, never half a file. The
    temporary name keeps the extension, so writers that infer the format from it (altair) still work."""
    path = Path(path)
    _remove_stale(path, f".tmp{path.suffix}")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        _usual_mode(tmp, 0o666)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Like :func:`atomic_path` for a folder output (a checkpoint, a tokenizer)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(path, ".tmp")
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        _usual_mode(tmp, 0o777)
        shutil.rmtree(path, ignore_errors=True)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_parquet(frame, path: str | os.PathLike) -> None:  # noqa: ANN001 - a polars DataFrame
    """``frame.write_parquet(path)``, atomically."""
    with atomic_path(path) as tmp:
        frame.write_parquet(tmp)
