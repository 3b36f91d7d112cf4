"""Published dynamic-placement figures the workload models are fitted on and judged against.

Source: the MoE placement competition (its documentation, huawei-cpl-zurich/moe-competition-docs, and a
participant's published sweep run with the organisers' simulator): DeepSeek-R1's Default and DS-EPLB every
256 to 4,096 iterations at EP 32 to 256 on four datasets, one redundant slot per device, mean PAR over the
trace and transmit (slots whose expert changed); and one Qwen3 cell. The cells live in a CSV file that the
config names (``placement.workloads.published``, ``config/published/competition_sweep.csv``), read here with
the standard library only (the competition submission bundles this module and must stay numpy-only).

A row with both values blank is a cell that was published but is kept back to judge predictions: the fit
never reads it, and the predictions table marks it ``predicted``. A cell with no row was not published
(``not given``). ``docs/stages/placement.md`` explains which cells each model is fitted on.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

SOURCE = "MoE placement competition: organisers' documentation and a participant's published DS-EPLB sweep"

# The models' shapes: MoE layers x routed experts, top-k
SHAPES = {"DS-R1": {"layers": 58, "experts": 256, "top_k": 8}, "Qwen3": {"layers": 94, "experts": 128, "top_k": 8}}
DS_R1 = SHAPES["DS-R1"]

# The public sample traces' lengths in iterations, by the model's MoE layers, from their file sizes (float32,
# a 128-byte .npy header): DS-R1 364,904,576 bytes = 6,144 x 58 x 256 x 4 + 128; Qwen3 246,415,488 bytes =
# 5,120 x 94 x 128 x 4 + 128. The competition does not tell a submission the length; these stand in for it.
TRACE_ITERATIONS = {58: 6144, 94: 5120}

COLUMNS = ("model", "dataset", "ep", "policy", "interval", "mean_par", "transmit")


@dataclass(frozen=True)
class PublishedCell:
    model: str  # a key of SHAPES
    dataset: str
    ep: int
    policy: str  # "Default" or "DS-EPLB"
    interval: int | None  # DS-EPLB's collection interval; None for Default
    mean_par: float | None  # None: kept back (published, not to be fitted on)
    transmit: float | None

    @property
    def key(self) -> tuple[int, int | None]:
        return self.ep, self.interval

    @property
    def kept_back(self) -> bool:
        return self.mean_par is None


class PublishedFileError(ValueError):
    """A published-cells file that cannot be read as the format above, named by file and line."""


def read_cells(path: str | Path) -> tuple[PublishedCell, ...]:
    """Every cell of a published-cells CSV, checked: the header, known models, EP sizes that split the model's
    experts, the policy and its interval, both values or neither, PAR >= 1, transmit >= 0 (0 for Default), no
    cell twice."""
    path = Path(path)
    if not path.is_file():
        raise PublishedFileError(f"{path}: published-cells file not found")
    out: list[PublishedCell] = []
    seen: dict[tuple, int] = {}
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != COLUMNS:
            raise PublishedFileError(f"{path}: line 1: expected the header {','.join(COLUMNS)}, got {header}")
        for line, row in enumerate(reader, start=2):
            if not row or all(not x.strip() for x in row):
                continue

            def bad(what: str) -> PublishedFileError:
                return PublishedFileError(f"{path}: line {line}: {what} (row {row})")  # noqa: B023

            if len(row) != len(COLUMNS):
                raise bad(f"expected {len(COLUMNS)} fields")
            model, dataset, ep, policy, interval, par, transmit = (x.strip() for x in row)
            if model not in SHAPES:
                raise bad(f"model {model!r}: expected one of {sorted(SHAPES)}")
            if not dataset:
                raise bad("empty dataset")
            if not ep.isdigit() or int(ep) < 1 or SHAPES[model]["experts"] % int(ep):
                raise bad(f"ep {ep!r}: expected a device count that splits {model}'s {SHAPES[model]['experts']} experts")
            if policy == "Default":
                if interval:
                    raise bad("Default has no interval")
                iv = None
            elif policy == "DS-EPLB":
                if not interval.isdigit() or int(interval) < 1:
                    raise bad(f"interval {interval!r}: expected DS-EPLB's collection interval, a positive integer")
                iv = int(interval)
            else:
                raise bad(f"policy {policy!r}: expected Default or DS-EPLB")
            if bool(par) != bool(transmit):
                raise bad("expected both mean_par and transmit, or neither (a cell kept back)")
            p = t = None
            if par:
                try:
                    p, t = float(par), float(transmit)
                except ValueError:
                    raise bad("mean_par and transmit must be numbers") from None
                if not p >= 1 or not t >= 0 or (iv is None and t != 0):
                    raise bad("expected mean_par >= 1 and transmit >= 0 (0 for Default)")
            cell = PublishedCell(model, dataset, int(ep), policy, iv, p, t)
            k = (model, dataset, cell.ep, iv)
            if k in seen:
                raise bad(f"the same cell as line {seen[k]}")
            seen[k] = line
            out.append(cell)
    return tuple(out)


def cells_of(cells: tuple[PublishedCell, ...], model: str, dataset: str) -> dict[tuple[int, int | None], PublishedCell]:
    """One workload's cells by (EP, interval)."""
    return {c.key: c for c in cells if c.model == model and c.dataset == dataset}
