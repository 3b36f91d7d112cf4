"""``HotnessError``: a hotness array or file is not usable, and why.

A module of its own, importing nothing: ``moelab.hotness`` (numpy and the trace I/O) raises it and names it
(``moelab.hotness.HotnessError`` is this class), and the import readers' ``ImportFileError`` subclasses it, so
``moelab.imports`` loads its error without numpy or the trace I/O.
"""

from __future__ import annotations


class HotnessError(ValueError):
    """A hotness file is not usable, and why."""
