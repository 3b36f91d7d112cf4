"""The one error of the import readers.

It subclasses :class:`moelab.hotness.HotnessError` (itself a ``ValueError``), so code that already catches the
hotness error for the competition and SGLang readers keeps working when those readers live here. The base class
comes from ``moelab.hotness_error``, which imports nothing: this module is light, and ``moelab.imports``
imports it at once.
"""

from __future__ import annotations

from pathlib import Path

from moelab.hotness_error import HotnessError


# how every reader words a dense layer kept (one that routed or counted nothing)
DENSE_HINT = "list the MoE layers in the config key moe_layers"


class ImportFileError(HotnessError):
    """A user's dump cannot be imported: the message names the file, the field and what was expected."""


def fail(path: str | Path, field: str, problem: str) -> ImportFileError:
    """``<file>: <field>: <problem>``, the shape of every import error (raise the result)."""
    return ImportFileError(f"{path}: {field}: {problem}" if field else f"{path}: {problem}")
