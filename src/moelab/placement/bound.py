"""The physical bound on PAR: no placement on the given devices and slots can do better.

The simulator splits each expert's load evenly over its copies and sums the copies per device. With
``D`` devices of ``S`` slots, a placement gives expert ``e`` some ``c_e >= 1`` copies with
``sum c_e <= D * S``. Whatever the placement, the busiest device carries at least the mean load
(``total / D``) and at least one whole copy (``load_e / c_e`` for every ``e``). The smallest possible
largest copy over all admissible ``c`` is reached greedily: start from one copy each and give every
spare slot to the expert whose copy is currently the heaviest (exchanging any copy for one of a heavier
expert never lowers that maximum); it is the least ``M`` for which ``max(1, ceil(load_e / M))`` copies of
every expert fit in the slots, which bisection finds for all rows at once. Hence, per iteration and layer,

    PAR >= max(1, max_e load_e / c_e * D / total)   with c from that greedy replication.

It is a bound, not a placement: it ignores that copies come in whole slots per device (packing), and
it knows the iteration's own load, which no policy sees in advance. (Copies beyond ``D`` of one expert
do not loosen it: some device then holds two of them, and ``load_e / D`` never exceeds the mean.) ``tests/test_bound.py`` checks it
against every placement of small cases.
"""

from __future__ import annotations

import numpy as np


def par_bound(load: np.ndarray, devices: int, slots_per_device: int, zero_to_one: bool = True) -> np.ndarray:
    """The lower bound on PAR for each row of ``load [..., E]`` (e.g. hotness ``[I, L, E]`` gives
    ``[I, L]``). ``zero_to_one`` as in the simulator (zero hotness counts as 1)."""
    load = np.asarray(load, dtype=np.float64)
    if zero_to_one:
        load = np.where(load == 0, 1.0, load)
    E = load.shape[-1]
    if devices * slots_per_device < E:
        raise ValueError(f"{E} experts do not fit {devices} devices x {slots_per_device} slots")
    flat = load.reshape(-1, E)
    out = np.empty(len(flat))
    for a in range(0, len(flat), 4096):  # chunks keep the per-row work small
        block = flat[a:a + 4096]
        total = block.sum(1)
        out[a:a + 4096] = np.maximum(1.0, _heaviest_copy(block, devices * slots_per_device) * devices
                                     / np.where(total > 0, total, 1.0))
    return out.reshape(load.shape[:-1])


def _heaviest_copy(block: np.ndarray, slots: int, steps: int = 48) -> np.ndarray:
    """Per row, the smallest possible heaviest copy (what greedy replication reaches), from below.

    A heaviest copy of at most M needs ``max(1, ceil(load_e / M))`` copies of each expert; the least M whose
    copies fit in ``slots`` is the greedy optimum. Bisection keeps an infeasible M (from below, so the result
    is a valid bound) within ``2**-steps`` of the largest load of the feasible one."""
    lo = np.zeros(len(block))
    hi = block.max(1)  # one copy each fits: E <= slots
    for _ in range(steps):
        mid = (lo + hi) / 2
        need = np.maximum(1.0, np.ceil(block / np.maximum(mid, 1e-300)[:, None])).sum(1)
        fits = need <= slots
        hi = np.where(fits, mid, hi)
        lo = np.where(fits, lo, mid)
    return lo
