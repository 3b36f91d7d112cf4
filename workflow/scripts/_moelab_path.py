"""Imported first by every script: makes this checkout's moelab the one imported, also in conda envs
(--sdm conda) where the package is not installed. Snakemake puts this folder on sys.path.

The checkout's src/ goes to the front even when sys.path already holds it further back: Snakemake hands
the script its own sys.path, where a moelab installed from another checkout (an editable install in a
shared venv) can come first, and a copy of the project must run its own code."""

import sys
from pathlib import Path

_SRC = str(Path(__file__).resolve().parents[2] / "src")
while _SRC in sys.path:
    sys.path.remove(_SRC)
sys.path.insert(0, _SRC)
_loaded = sys.modules.get("moelab")
if _loaded is not None and not str(Path(_loaded.__file__).resolve()).startswith(_SRC):
    raise ImportError(f"moelab was imported from {_loaded.__file__} before {_SRC} was put first")
