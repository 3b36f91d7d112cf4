"""moelab's dynamic placement policy, built where EPLB is weak (anchors.md).

EPLB re-derives every placement from scratch, so each call moves most slots; it decides replica
counts and placement separately and can put two copies of an expert on one device. This policy:

- smooths hotness (an exponentially weighted window, recent iterations count more);
- starts from the current table and keeps every expert in its slot unless moving it pays;
- decides replicas and placement together: a copy is added (or dropped) where the device loads
  say so, never two copies of one expert on a device;
- moves the cheapest way to a target balance: per layer, greedy moves that cut the estimated
  peak load most per slot moved, until the layer's estimated PAR reaches ``target`` (by default
  what EPLB would reach on the same smoothed loads) or no move helps; a layer whose plan saves
  less modelled time than its transfer costs is left alone (``accept="pays"``), or accepted when
  it reaches the target (``accept="target"``, the default: balance at least as good as EPLB's).
"""

from __future__ import annotations

import numpy as np

from moelab.placement.eplb import rebalance
from moelab.placement.simulator import Policy, SimSpec


def device_loads(load: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Estimated load per device ``[D]`` of one layer: each expert's load split over its copies."""
    flat = table.ravel()
    valid = flat >= 0
    copies = np.bincount(flat[valid], minlength=load.size)
    share = np.where(valid, load[np.where(valid, flat, 0)] / np.maximum(copies[np.where(valid, flat, 0)], 1), 0)
    return share.reshape(table.shape).sum(1)


def _par(load: np.ndarray, table: np.ndarray) -> float:
    d = device_loads(load, table)
    return float(d.max() / d.mean()) if d.mean() > 0 else 1.0


def plan_layer(load: np.ndarray, current: np.ndarray, target: float, max_moves: int,
               candidates: int = 3) -> tuple[np.ndarray, int]:
    """Greedy least-move plan for one layer. Returns (table, slots changed).

    Each step looks at the peak device and tries, for its ``candidates`` heaviest experts x:
    a new copy of x on a lighter device that lacks x, in an empty slot or in place of a spare
    copy (of an expert with two or more) - one slot; and a swap of x with a slot of a lighter
    device - two slots (one if that slot is empty). The move with the largest cut of the peak
    per slot wins; the plan stops at ``target`` PAR, after ``max_moves`` or when nothing helps.
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
        best, best_cut = None, 1e-12
        for x in xs:
            a = int(np.flatnonzero(table[hi] == x)[0])
            for lo in lighter:
                if x in holds[lo]:
                    continue
                for b in range(S):
                    y = int(table[lo, b])
                    # (1) a new copy of x replacing an empty slot or a spare copy of y
                    if y < 0 or copies[y] >= 2:
                        trial = table.copy()
                        trial[lo, b] = x
                        cut = dev[hi] - device_loads(load, trial).max()
                        if cut > best_cut:
                            best, best_cut = trial, cut
                    # (2) swap x and y between hi and lo
                    if y < 0 or y not in holds[hi]:
                        trial = table.copy()
                        trial[hi, a], trial[lo, b] = y, x
                        if y < 0 and copies[x] < 1:
                            continue
                        cut = (dev[hi] - device_loads(load, trial).max()) / (1 if y < 0 else 2)
                        if cut > best_cut:
                            best, best_cut = trial, cut
        if best is None:
            break
        table = best
    return table, int((table != current).sum())


def moelab_policy(spec: SimSpec, halflife: float = 256.0, accept: str = "target",
                  total_iterations: int = 8192, max_moves: int = 64) -> Policy:
    """The policy described in the module docstring, as a simulator callable."""
    if accept not in ("target", "pays"):
        raise ValueError(f"accept={accept!r}: expected 'target' or 'pays'")

    def policy(window: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w, L, E = window.shape
        age = np.arange(w)[::-1]
        weight = 0.5 ** (age / halflife)
        load = np.tensordot(weight, window, axes=1) / weight.sum()  # [L, E]
        eplb, _, _ = rebalance(load, spec.devices * spec.slots_per_device, 1, 1, spec.devices)
        eplb = eplb.reshape(L, spec.devices, spec.slots_per_device)
        horizon = spec.interval + L
        new = current.copy()
        net = np.zeros(L)
        for layer in range(L):
            target = _par(load[layer], eplb[layer])
            table, moved = plan_layer(load[layer], current[layer], target, max_moves)
            if moved == 0:
                continue
            saved = spec.par_weight * (_par(load[layer], current[layer]) - _par(load[layer], table)) \
                * horizon / (total_iterations * L)
            cost = moved * spec.slot_bytes / spec.bandwidth
            if accept == "pays" and saved <= cost:
                continue
            new[layer] = table
            net[layer] = saved - cost
        return new, np.argsort(-net, kind="stable")

    return policy
