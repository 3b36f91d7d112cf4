"""Where a figure's or table's data came from: the one place that words a provenance line.

Every figure and table names its source (synthetic, captured or proxy; which checkpoint; CPU or GPU), read
from the data itself (a trace's metadata or a frame's own columns), never written by hand.
"""

from __future__ import annotations

import polars as pl


def of_trace(meta) -> str:  # noqa: ANN001 - moelab.traces.TraceMeta
    """One trace: the synthetic scenario, or the checkpoint, device, dtype and corpus domains it was captured
    with (or the checkpoint whose routers a gaussian proxy fed)."""
    c = meta.config
    if meta.source_kind == "synthetic":
        return f"synthetic scenario {meta.source_id}, generated on CPU"
    if meta.source_kind == "imported":
        return (f"imported from a {c.get('format', '?')} dump ({c.get('path', '?')}; E={meta.num_experts}, "
                f"k={meta.top_k}), not captured by moelab")
    what = f"{c.get('path', meta.source_id)} ({c.get('model_type', '?')}, E={meta.num_experts}, k={meta.top_k})"
    if meta.source_kind == "proxy":
        return f"proxy: N(0,1) hidden states into the routers of {what}"
    return (f"captured from {what} on {meta.capture_device}, {meta.capture_dtype}; corpus domains: "
            f"{', '.join(meta.domains)}")


def of_rows(frame: pl.DataFrame, name: str = "trace", kind: str = "source_kind", device: str | None = None) -> str:
    """The distinct sources of a result frame, e.g. ``captured-tiny (captured on cpu), proxy-tiny (proxy on
    cpu)``: ``name (kind)``, with `` on <device>`` for non-synthetic rows when a ``device`` column is given."""
    cols = [name, kind] + ([device] if device else [])
    rows = frame.select(cols).unique().sort(name)
    if device is None:
        return "; ".join(f"{n} ({k})" for n, k in rows.iter_rows())
    return ", ".join(f"{n} ({k})" if k == "synthetic" else f"{n} ({k} on {d})" for n, k, d in rows.iter_rows())


def of_measurements(frame: pl.DataFrame) -> str:
    """Timed rows (kernel benchmarks): each device with its shape scale and whether the rows were recorded
    elsewhere, then the traces by source kind."""
    devices = (frame.select("device_kind", "device_name", "provenance", "scale").unique()
               .sort("device_kind", "device_name", "provenance", "scale"))
    where = "; ".join(
        f"{r['device_kind']} {r['device_name']}"
        + (f" (hidden, ffn / {r['scale']})" if r["scale"] > 1 else "")
        + ("" if r["provenance"] == "regenerated" else f", {r['provenance']}")
        for r in devices.iter_rows(named=True))
    kinds = frame.group_by("source_kind").agg(pl.col("trace").unique().sort()).sort("source_kind")
    traces = "; ".join(f"{r['source_kind']}: {', '.join(r['trace'])}" for r in kinds.iter_rows(named=True))
    return f"{where} | traces {traces}"
