"""SGLang's expert-distribution-recorder dumps in ``per_pass`` and ``per_token`` mode, shared by both readers.

Each rank writes one ``torch.save`` dict: ``records`` (one per forward pass: ``forward_pass_id``, ``rank``,
``gatherer_key`` and the mode's data) and ``last_physical_to_logical_map`` ``[layers, physical experts]``.
Here the rank files are opened, their structure checked (each record's rank matches its file, every rank has
a file and records the same forward passes, the ranks share one map) and the records returned in stream
order: by forward pass, then rank, then their order in the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from moelab.imports import layout
from moelab.imports.errors import fail
from moelab.imports.loaders import as_array, check_map, load_map_file, torch_load

MAP_KEY = "last_physical_to_logical_map"
RECORD_KEYS = ("forward_pass_id", "rank", "gatherer_key")


@dataclass(frozen=True)
class Record:
    """One record and where it came from (for error messages)."""

    path: Path
    index: int
    rank: int
    forward_pass_id: int
    data: dict[str, Any]

    def where(self, key: str) -> str:
        return f"records[{self.index}].{key}"


@dataclass(frozen=True)
class Dump:
    records: list[Record]
    p2l: np.ndarray  # [layers, physical] int64, checked
    experts: int
    map_source: Path


def _int(x: Any, path: Path, field: str) -> int:
    if hasattr(x, "item"):
        x = x.item()
    if isinstance(x, bool) or not isinstance(x, int):
        raise fail(path, field, f"expected an integer, got {x!r}")
    return x


def load(path: str | Path, *, ep_size: int | None, fields: tuple[str, ...], mode: str,
         map_path: str | None = None, experts: int | None = None, mmap: bool = False) -> Dump:
    """Open and check every rank file of a dump. ``fields``: the keys each record must hold in ``mode``."""
    files = layout.sglang_files(Path(path), ep_size)
    records: list[Record] = []
    first_map: tuple[Path, np.ndarray] | None = None
    for file_rank, f in files:
        d = torch_load(f, mmap=mmap)
        if not isinstance(d, dict):
            raise fail(f, "", f"expected a dict (SGLang recorder dump), got {type(d).__name__}")
        if "records" not in d:
            hint = " (a stat-mode dump: use format sglang-stat)" if "logical_count" in d else ""
            raise fail(f, "records", f"missing{hint}; the dump has keys {sorted(map(str, d))}")
        if not isinstance(d["records"], list):
            raise fail(f, "records", f"expected a list, got {type(d['records']).__name__}")
        if map_path is None:
            if MAP_KEY not in d:
                raise fail(f, MAP_KEY, "missing: give the map with the config key physical_to_logical")
            m = as_array(d[MAP_KEY], f, MAP_KEY, "iu")
            if first_map is None:
                first_map = (f, m)
            elif m.shape != first_map[1].shape or not np.array_equal(m, first_map[1]):
                raise fail(f, MAP_KEY, f"differs from the map in {first_map[0]}: the rank files of one dump "
                                       f"share one map (files from different dumps?)")
        for i, rec in enumerate(d["records"]):
            if not isinstance(rec, dict):
                raise fail(f, f"records[{i}]", f"expected a dict, got {type(rec).__name__}")
            for key in (*RECORD_KEYS, *fields):
                if key not in rec:
                    raise fail(f, f"records[{i}].{key}", f"missing (a {mode} record holds "
                                                         f"{list(RECORD_KEYS + fields)}; got {sorted(rec)})")
            rank = _int(rec["rank"], f, f"records[{i}].rank")
            if file_rank is not None and rank != file_rank:
                raise fail(f, f"records[{i}].rank", f"is {rank}, expected {file_rank} (the rank in the file name)")
            records.append(Record(f, i, rank, _int(rec["forward_pass_id"], f, f"records[{i}].forward_pass_id"),
                                  rec))
    where = Path(path)
    if not records:
        raise fail(where, "records", "the dump holds no records (was recording started?)")
    passes: dict[int, set[int]] = {}
    for r in records:
        passes.setdefault(r.rank, set()).add(r.forward_pass_id)
    if ep_size is not None:
        for rank in range(ep_size):
            if rank not in passes:
                raise fail(where, "records", f"no records of rank {rank} (ep_size={ep_size})")
        if max(passes) >= ep_size:
            raise fail(where, "records", f"records of rank {max(passes)}, outside ep_size={ep_size}")
    every = set().union(*passes.values())
    for rank, got in sorted(passes.items()):
        if got != every:
            fp = min(every - got)
            f = next(r.path for r in records if r.rank == rank)
            raise fail(f, "records", f"rank {rank} has no record of forward_pass_id {fp}, which other ranks "
                                     f"have: expected every rank to record the same passes")
    if map_path is not None:
        src = Path(map_path)
        p2l, E = check_map(load_map_file(src), src, "physical_to_logical", experts)
    else:
        assert first_map is not None
        src = first_map[0]
        p2l, E = check_map(first_map[1], src, MAP_KEY, experts)
    order = sorted(range(len(records)), key=lambda j: (records[j].forward_pass_id, records[j].rank, j))
    return Dump([records[j] for j in order], p2l, E, src)
