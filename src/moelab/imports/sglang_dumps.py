"""SGLang's expert-distribution-recorder dumps in ``per_pass`` and ``per_token`` mode, shared by both readers.

Each rank writes one ``torch.save`` dict: ``records`` (one per forward pass: ``forward_pass_id``, ``rank``,
``gatherer_key`` and the mode's data) and ``last_physical_to_logical_map`` ``[layers, physical experts]``.
A real dump is large (EP32 x 6000 passes x [61 layers, 288 physical] is ~13 GB as int64), so :func:`scan`
streams it: one rank file at a time, opened with memory-mapped tensors, its structure checked (each record's
rank matches its file, every rank records the same forward passes, the ranks share one map), handed to the
reader and released before the next file is opened. At the end it checks that every rank had records.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import moelab.imports.layout as layout
from moelab.imports.errors import fail
from moelab.imports.loaders import as_array, check_map, load_map_file, torch_load

MAP_KEY = "last_physical_to_logical_map"
RECORD_KEYS = ("forward_pass_id", "rank", "gatherer_key")
PER_TOKEN_FIELDS = ("topk_ids_of_layer", "input_ids", "positions", "extend_seq_lens", "forward_mode")


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
    """What every rank file shares, known once the first file with records is open."""

    p2l: np.ndarray  # [layers, physical] int64, checked
    experts: int
    map_source: Path
    passes: np.ndarray  # the forward_pass_ids every rank recorded, sorted


@dataclass(frozen=True)
class RankFile:
    """One file's records, in file order; ``order`` is the file's place among the dump's files."""

    path: Path
    order: int
    records: list[Record]


def _int(x: Any, path: Path, field: str) -> int:
    if hasattr(x, "item"):
        x = x.item()
    if isinstance(x, bool) or not isinstance(x, int):
        raise fail(path, field, f"expected an integer, got {x!r}")
    return x


def _passes_by_rank(records: list[Record]) -> dict[int, set[int]]:
    out: dict[int, set[int]] = {}
    for r in records:
        out.setdefault(r.rank, set()).add(r.forward_pass_id)
    return out


def _open(f: Path, file_rank: int | None, fields: tuple[str, ...], mode: str, mmap: bool,
          want_map: bool) -> tuple[list[Record], np.ndarray | None]:
    """One rank file's records (structure checked) and its map (when the dump's map is used)."""
    d = torch_load(f, mmap=mmap)
    if not isinstance(d, dict):
        raise fail(f, "", f"expected a dict (SGLang recorder dump), got {type(d).__name__}")
    if "records" not in d:
        hint = " (a stat-mode dump: use format sglang-stat)" if "logical_count" in d else ""
        raise fail(f, "records", f"missing{hint}; the dump has keys {sorted(map(str, d))}")
    if not isinstance(d["records"], list):
        raise fail(f, "records", f"expected a list, got {type(d['records']).__name__}")
    m = None
    if want_map:
        if MAP_KEY not in d:
            raise fail(f, MAP_KEY, "missing: give the map with the config key physical_to_logical")
        m = as_array(d[MAP_KEY], f, MAP_KEY, "iu").copy()  # a copy: the file's memory map can go
    records = []
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
        records.append(Record(f, i, rank, _int(rec["forward_pass_id"], f, f"records[{i}].forward_pass_id"), rec))
    return records, m


def scan(path: str | Path, *, ep_size: int | None, fields: tuple[str, ...], mode: str,
         map_path: str | None = None, experts: int | None = None, mmap: bool = True
         ) -> Iterator[tuple[Dump, RankFile]]:
    """Each rank file of a dump with records, one at a time, checked. ``fields``: the keys each record must
    hold in ``mode``. Only one file's records are held here at a time: a caller that keeps none of them (it
    accumulates what it needs) holds one file's worth. Raises ImportFileError, possibly after the last file
    (a rank without records)."""
    files = layout.sglang_files(Path(path), ep_size)
    where = Path(path)
    p2l: np.ndarray | None = None
    E = 0
    if map_path is not None:
        src = Path(map_path)
        p2l, E = check_map(load_map_file(src), src, "physical_to_logical", experts)
    first_map: tuple[Path, np.ndarray] | None = None
    ref: tuple[int, Path, set[int]] | None = None  # the first rank's passes: every rank must match them
    dump: Dump | None = None
    ranks: set[int] = set()
    for order, (file_rank, f) in enumerate(files):
        records, m = _open(f, file_rank, fields, mode, mmap, want_map=map_path is None)
        if m is not None:
            if first_map is None:
                first_map = (f, m)
                src = f
                p2l, E = check_map(m, f, MAP_KEY, experts)
            elif m.shape != first_map[1].shape or not np.array_equal(m, first_map[1]):
                raise fail(f, MAP_KEY, f"differs from the map in {first_map[0]}: the rank files of one dump "
                                       f"share one map (files from different dumps?)")
        by_rank = _passes_by_rank(records)
        for rank, got in sorted(by_rank.items()):
            if ref is None:
                ref = (rank, f, got)
                continue
            if got - ref[2]:
                raise fail(ref[1], "records", f"rank {ref[0]} has no record of forward_pass_id {min(got - ref[2])}, "
                                              f"which other ranks have: expected every rank to record the same "
                                              f"passes")
            if ref[2] - got:
                raise fail(f, "records", f"rank {rank} has no record of forward_pass_id {min(ref[2] - got)}, "
                                         f"which other ranks have: expected every rank to record the same passes")
        ranks |= by_rank.keys()
        if not records:
            continue
        if dump is None:
            assert ref is not None and p2l is not None
            dump = Dump(p2l, E, src, np.asarray(sorted(ref[2]), np.int64))
        rf = RankFile(f, order, records)
        del records, by_rank
        yield dump, rf
        del rf  # this file's records go before the next file is opened
    if not ranks:
        raise fail(where, "records", "the dump holds no records (was recording started?)")
    if ep_size is not None:
        for rank in range(ep_size):
            if rank not in ranks:
                raise fail(where, "records", f"no records of rank {rank} (ep_size={ep_size})")
        if max(ranks) >= ep_size:
            raise fail(where, "records", f"records of rank {max(ranks)}, outside ep_size={ep_size}")
