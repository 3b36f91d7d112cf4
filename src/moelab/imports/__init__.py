"""Readers that turn users' serving-engine dumps into moelab's data (``docs/stages/imports.md``).

Two kinds of source: **hotness** formats give per-iteration expert counts ``[iterations, layers, logical
experts]`` (:func:`read_hotness`); **trace** formats give token-level routing that becomes a moelab trace
(:func:`read_trace`, ``source_kind`` ``imported``). One config entry (:class:`ImportSpec`) names the file and
its format and supplies what the format does not store; every problem is an :class:`ImportFileError` naming
the file, the field and what was expected.

Importing this package is light (the workflow imports it for ``ImportSpec`` each time Snakemake parses the
workflow, once per job): at import it loads the spec, the formats, where each format's files are and
:class:`ImportFileError` (whose base class, ``moelab.hotness_error.HotnessError``, imports nothing); the readers,
the checks and what they need (torch, safetensors, pyarrow, numpy) are imported inside :func:`read_hotness`,
:func:`read_trace` and ``ImportSpec.check_files``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from moelab.imports.errors import ImportFileError
from moelab.imports.formats import FORMATS, FormatInfo
from moelab.imports.spec import ImportSpec

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from moelab.traces import TraceMeta

__all__ = ["FORMATS", "FormatInfo", "ImportFileError", "ImportSpec", "read_hotness", "read_trace"]


def read_hotness(spec: ImportSpec, notes: dict | None = None) -> "np.ndarray":
    """``[I, L, E]`` float64 logical counts of a hotness import, validated. ``notes`` receives what the
    reader inferred (e.g. how SGLang's stat ring buffer was ordered), for the import's metadata."""
    from moelab.imports import hotness_formats

    if spec.kind != "hotness":
        raise ImportFileError(f"{spec.path}: format {spec.format!r} gives a trace, not hotness (use read_trace)")
    f, path = spec.format, Path(spec.path)
    if f == "competition-npy":
        return hotness_formats.read_npy(path, experts=spec.experts)
    if f == "sglang-stat":
        return hotness_formats.read_sglang_stat(path, moe_layers=spec.moe_layers, experts=spec.experts,
                                                ring_start=spec.ring_start, notes=notes)
    if f == "sglang-per-pass":
        return hotness_formats.read_sglang_per_pass(path, ep_size=spec.ep_size, map_path=spec.physical_to_logical,
                                                    moe_layers=spec.moe_layers, experts=spec.experts)
    if f == "trtllm-expert-statistic":
        return hotness_formats.read_trtllm(path, ep_size=spec.ep_size, experts=spec.experts, top_k=spec.top_k,
                                           map_path=spec.physical_to_logical)
    if f == "vllm-expert-load":
        assert spec.physical_to_logical is not None  # required by the spec
        return hotness_formats.read_vllm(path, map_path=spec.physical_to_logical, experts=spec.experts)
    raise AssertionError(f"no hotness reader for {f}")  # FORMATS and this dispatch disagree


def read_trace(spec: ImportSpec, seed: int) -> "tuple[TraceMeta, pa.Table]":
    """A valid moelab trace (``source_kind`` ``imported``, ``source_id`` ``imported-<name>``) from a trace
    import; write it with ``moelab.traces.write_trace``. The readers draw no random numbers; ``seed`` is
    recorded in the metadata's config."""
    from moelab.imports import trace_formats

    if spec.kind != "trace":
        raise ImportFileError(f"{spec.path}: format {spec.format!r} gives hotness, not a trace (use read_hotness)")
    readers = {"sglang-per-token": trace_formats.read_sglang_per_token,
               "sglang-routed-experts": trace_formats.read_sglang_routed_experts,
               "flame-moe": trace_formats.read_flame_moe}
    return readers[spec.format](spec, seed)
