"""The physical bound on PAR: no placement on the given devices and slots can do better.

The simulator splits each expert's load evenly over its copies and sums the copies per device. With
``D`` devices of ``S`` slots, a placement gives expert ``e`` some ``c_e >= 1`` copies with
``sum c_e <= D * S``. Whatever the placement, the busiest device carries at least the mean load
(``total / D``) and at least one whole copy (``load_e / c_e`` for every ``e``). The smallest possible
largest copy over all admissible ``c`` is reached greedily: start from one copy each and give every
spare slot to the expert whose copy is currently the heaviest (exchanging any copy for one of a heavier
expert never lowers that maximum). Hence, per iteration and layer,

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
    spare = devices * slots_per_device - E
    if spare < 0:
        raise ValueError(f"{E} experts do not fit {devices} devices x {slots_per_device} slots")
    flat = load.reshape(-1, E)
    out = np.empty(len(flat))
    for a in range(0, len(flat), 4096):  # chunks keep the per-copy matrix small
        block = flat[a:a + 4096]
        per = block.copy()  # load per copy
        copies = np.ones_like(block)
        rows = np.arange(len(block))
        for _ in range(spare):
            e = np.argmax(per, axis=1)
            copies[rows, e] += 1
            per[rows, e] = block[rows, e] / copies[rows, e]
        total = block.sum(1)
        out[a:a + 4096] = np.maximum(1.0, per.max(1) * devices / np.where(total > 0, total, 1.0))
    return out.reshape(load.shape[:-1])
