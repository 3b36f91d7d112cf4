"""Every dynamic placement policy the simulator runs (``docs/stages/placement.md``): Default is no policy
(``simulate(hot, None, spec)``), :func:`eplb_policy` is DeepSeek's EPLB, :func:`moelab_policy` is ours.

moelab's policy is built where EPLB is weak. EPLB re-derives every placement from scratch, so each call moves most slots, and it can put two
copies of an expert on one device. This policy:

- smooths hotness (an exponentially weighted window: recent iterations count more);
- takes EPLB's packing of the smoothed loads as the device contents, moves second copies of an
  expert off a device (:func:`dedupe`), and lays the contents over the current table so that
  every expert that stays on its device keeps its slot (:func:`align`: devices matched by overlap);
- redeploys a layer only when its estimated PAR drops by ``min_gain`` and, with
  ``accept="pays"``, when the modelled time saved over the next interval exceeds the transfer;
- because it moves few slots per call, it can afford to be called far more often than EPLB
  (``interval`` is the simulator's; the benchmark uses 128 iterations against EPLB's 1024).

A greedy least-move planner (:func:`plan_layer`: new copies into spare slots, swaps, stopping at
EPLB's balance) is kept as an alternative (``max_moves > 0``); it moves fewer slots but stalls in
local optima short of EPLB's balance.
"""

from __future__ import annotations

import numpy as np

from moelab.placement.eplb import rebalance
from moelab.placement.simulator import Policy, SimSpec


def eplb_policy(spec: SimSpec, num_groups: int = 1, num_nodes: int = 1) -> Policy:
    """DeepSeek EPLB on the window's summed hotness, layers redeployed in index order."""

    def policy(window: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        L = window.shape[1]
        phy2log, _, _ = rebalance(window.sum(0), spec.devices * spec.slots_per_device, num_groups,
                                  num_nodes, spec.devices)
        return phy2log.reshape(L, spec.devices, spec.slots_per_device), np.arange(L)

    return policy


def device_loads(load: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Estimated load per device ``[D]`` of one layer: each expert's load split over its copies."""
    return _batch_device_loads(load, table[None])[0]


def _par(load: np.ndarray, table: np.ndarray) -> float:
    d = device_loads(load, table)
    return float(d.max() / d.mean()) if d.mean() > 0 else 1.0


def _batch_device_loads(load: np.ndarray, tables: np.ndarray) -> np.ndarray:
    """Estimated device loads ``[n, D]`` of each table in ``tables [n, D, S]`` (:func:`device_loads` is
    the one-table case, so a batch of trial tables scores exactly as each would alone)."""
    n, D, S = tables.shape
    E = load.size
    flat = tables.reshape(n, D * S)
    valid = flat >= 0
    rows = np.where(valid, flat, 0) + (np.arange(n) * E)[:, None]  # (trial, expert) cells
    copies = np.bincount(rows[valid], minlength=n * E)
    share = np.where(valid, np.tile(load, n)[rows] / np.maximum(copies[rows], 1), 0)
    return share.reshape(n, D, S).sum(2)


def plan_layer(load: np.ndarray, current: np.ndarray, target: float, max_moves: int,
               candidates: int = 3) -> tuple[np.ndarray, int]:
    """Greedy least-move plan for one layer. Returns (table, slots changed).

    Each step looks at the peak device and tries, for its ``candidates`` heaviest experts x:
    a new copy of x on a lighter device that lacks x, in an empty slot or in place of a spare
    copy (of an expert with two or more) - one slot; and a swap of x with a slot of a lighter
    device - two slots (one if that slot is empty). The move with the largest cut of the peak
    per slot wins (the first in that order on a tie); the plan stops at ``target`` PAR, after
    ``max_moves`` or when nothing helps. All of a step's trials are scored in one batch.
    """
    table = current.copy()
    D, S = table.shape
    for _ in range(max_moves):
        dev = device_loads(load, table)
        if dev.max() / dev.mean() <= target:
            break
        hi = int(np.argmax(dev))
        flat = table.ravel()
        copies = np.bincount(flat[flat >= 0], minlength=load.size)
        holds = [set(table[d][table[d] >= 0].tolist()) for d in range(D)]
        xs = sorted((x for x in holds[hi]), key=lambda x: (-load[x] / copies[x], x))[:candidates]
        lighter = [int(d) for d in np.argsort(dev, kind="stable") if d != hi][:max(2, D // 4)]
        # the moves in the order they are tried: (x, its slot a on hi, lo, b, swap?); per = slots changed
        moves, per = [], []
        for x in xs:
            a = int(np.flatnonzero(table[hi] == x)[0])
            for lo in lighter:
                if x in holds[lo]:
                    continue
                for b in range(S):
                    y = int(table[lo, b])
                    if y < 0 or copies[y] >= 2:  # (1) a new copy of x in an empty slot or a spare copy's
                        moves.append((x, a, lo, b, 0))
                        per.append(1)
                    if (y < 0 or y not in holds[hi]) and not (y < 0 and copies[x] < 1):  # (2) swap x and y
                        moves.append((x, a, lo, b, 1))
                        per.append(1 if y < 0 else 2)
        if not moves:
            break
        mv = np.array(moves)
        trials = np.repeat(table[None], len(moves), axis=0)
        k = np.arange(len(moves))
        swap = mv[:, 4] == 1
        trials[k[swap], hi, mv[swap, 1]] = table[mv[swap, 2], mv[swap, 3]]
        trials[k, mv[:, 2], mv[:, 3]] = mv[:, 0]
        cut = (dev[hi] - _batch_device_loads(load, trials).max(1)) / np.array(per)
        best = int(np.argmax(cut))
        if not cut[best] > 1e-12:
            break
        table = trials[best].copy()
    return table, int((table != current).sum())


def dedupe(load: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Move second copies of an expert off a device: swap each with the slot of another device
    that holds neither expert and whose per-copy load is closest (balance barely changes)."""
    table = table.copy()
    D, S = table.shape
    for _ in range(D * S):
        dup = None
        for d in range(D):
            vals, cnt = np.unique(table[d][table[d] >= 0], return_counts=True)
            if (cnt > 1).any():
                dup = (d, int(vals[np.argmax(cnt > 1)]))
                break
        if dup is None:
            return table
        d, x = dup
        a = int(np.flatnonzero(table[d] == x)[1])
        flat = table.ravel()
        copies = np.bincount(flat[flat >= 0], minlength=load.size)
        best, best_gap = None, np.inf
        for d2 in range(D):
            if d2 == d or x in table[d2]:
                continue
            for b in range(S):
                y = int(table[d2, b])
                if y >= 0 and y in table[d]:
                    continue
                gap = abs((load[y] / copies[y] if y >= 0 else 0.0) - load[x] / copies[x])
                if gap < best_gap:
                    best, best_gap = (d2, b), gap
        if best is None:
            return table  # nowhere to go (more copies than devices)
        d2, b = best
        table[d, a], table[d2, b] = table[d2, b], table[d, a]
    return table


def align(current: np.ndarray, plan: np.ndarray) -> np.ndarray:
    """The same device contents as ``plan``, laid out to change as few slots of ``current`` as
    possible: plan devices matched to current devices by overlap (an assignment problem), then
    every expert that stays on its device keeps its slot."""
    from collections import Counter

    from scipy.optimize import linear_sum_assignment

    D, S = plan.shape
    cur = [Counter(current[d][current[d] >= 0].tolist()) for d in range(D)]
    new = [Counter(plan[g][plan[g] >= 0].tolist()) for g in range(D)]
    overlap = np.array([[sum((cur[d] & new[g]).values()) for g in range(D)] for d in range(D)])
    rows, cols = linear_sum_assignment(-overlap)
    out = np.full_like(plan, -1)
    for d, g in zip(rows, cols, strict=True):
        want = Counter(new[g])
        free = []
        for s in range(S):
            x = int(current[d, s])
            if x >= 0 and want[x] > 0:
                out[d, s] = x
                want[x] -= 1
            else:
                free.append(s)
        rest = sorted(want.elements())
        for s, x in zip(free, rest, strict=False):
            out[d, s] = x
    return out


def moelab_policy(spec: SimSpec, halflife: float = 256.0, accept: str = "target",
                  total_iterations: int = 8192, min_gain: float = 0.01, max_moves: int = 0,
                  horizon_calls: float = 1.0) -> Policy:
    """The policy described in the module docstring, as a simulator callable.

    Per layer: EPLB's packing on the smoothed loads gives the device contents; ``dedupe`` keeps
    one copy per device; ``align`` lays them out over the current slots. With ``max_moves`` > 0
    the greedy least-move plan (:func:`plan_layer`, EPLB's balance as its target) competes too,
    and the option with the larger net saving wins. A layer is redeployed only if its estimated PAR drops by at least ``min_gain`` and,
    with ``accept="pays"``, if the modelled time it saves over the next interval exceeds its
    transfer time; the saving is counted over ``horizon_calls`` intervals (a kept placement
    usually outlives the next call).
    """
    if accept not in ("target", "pays"):
        raise ValueError(f"accept={accept!r}: expected 'target' or 'pays'")

    def policy(window: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w, L, E = window.shape
        age = np.arange(w)[::-1]
        weight = 0.5 ** (age / halflife)
        load = np.tensordot(weight, window, axes=1) / weight.sum()  # [L, E]
        eplb, _, _ = rebalance(load, spec.devices * spec.slots_per_device, 1, 1, spec.devices)
        eplb = eplb.reshape(L, spec.devices, spec.slots_per_device)
        horizon = horizon_calls * spec.interval + L
        new = current.copy()
        net = np.zeros(L)
        for layer in range(L):
            before = _par(load[layer], current[layer])
            options = [align(current[layer], dedupe(load[layer], eplb[layer]))]
            if max_moves:  # also the least-move greedy plan; the better net saving wins
                options.append(plan_layer(load[layer], current[layer], _par(load[layer], eplb[layer]),
                                          max_moves)[0])
            best, best_net = None, -np.inf
            for table in options:
                moved = int((table != current[layer]).sum())
                gain = before - _par(load[layer], table)
                if moved == 0 or gain < min_gain:
                    continue
                saved = spec.par_weight * gain * horizon / (total_iterations * L)
                cost = moved * spec.slot_bytes / spec.bandwidth
                if accept == "pays" and saved <= cost:
                    continue
                if saved - cost > best_net:
                    best, best_net = table, saved - cost
            if best is not None:
                new[layer] = best
                net[layer] = best_net
        return new, np.argsort(-net, kind="stable")

    return policy
