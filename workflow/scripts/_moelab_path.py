"""Imported first by every script: makes this checkout's moelab importable, also in conda envs
(--sdm conda) where the package is not installed. Snakemake puts this folder on sys.path."""

import sys
from pathlib import Path

_SRC = str(Path(__file__).resolve().parents[2] / "src")
if _SRC not in sys.path:
    sys.path.insert(0, _SRC)
