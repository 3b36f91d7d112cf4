"""The dynamic placement simulator, with the competition's semantics (``docs/stages/placement.md``).

Hotness ``[I, L, E]``; a deployment is, per layer, a table ``[devices, slots]`` of expert ids
(-1 = an empty slot). Each iteration:

1. if a redeployment is pending, the next layer in the policy's priority order switches to its new
   table; the transmit amount grows by the number of slots whose expert changed (slot by slot);
2. every layer's PAR is taken: each expert's hotness is split evenly over its copies, summed per
   device, and max / mean over devices.

A policy is first called once its own ``interval`` has passed (iteration ``interval``), then ``interval``
iterations after its previous redeployment finished: the one first-call rule of every evaluation. It
sees only the past ``window`` iterations (never the current one) and returns new tables ``[L, D, S]`` and
a priority order of layers (``oracle``: the coming ``window`` iterations instead, for a bound). As in the
competition, the policy's own time is not a term of the score: it delays the redeployment by
``ceil(seconds / iteration_seconds)`` iterations, with ``policy_seconds`` a modelled time per call
(deterministic) or, with ``measured_delay``, the call's measured wall time. The reported PAR is the mean
over iterations and layers (also given from the first call on); the modelled time is
``par_weight * PAR + transmit * slot_bytes / bandwidth``; the score against a baseline is ``100 * T_base / T``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

Policy = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class SimSpec:
    devices: int
    slots_per_device: int
    window: int = 1024
    interval: int = 1024
    zero_to_one: bool = True  # the competition replaces zero hotness by 1
    par_weight: float = 60.0  # seconds charged per unit of mean PAR
    slot_bytes: float = 88_080_384  # one DS-R1 expert in bf16
    bandwidth: float = 900e9  # bytes/s
    policy_seconds: float = 0.0  # modelled policy time per call: delays each redeployment (deterministic)
    iteration_seconds: float = 0.08  # one serving iteration, the unit of that delay
    measured_delay: bool = False  # delay by the measured wall time instead (a measurement: results/bench/)
    oracle: bool = False  # the policy sees the coming window instead of the past one: a bound, not a policy
    full_layers: int | None = None  # the model's layers when fewer are simulated: a redeployment is paced as theirs
    first_call: int | None = None  # None: once its own interval has passed; earlier for the grid's "DS-EPLB early"


def contiguous(num_layers: int, num_experts: int, devices: int, slots_per_device: int) -> np.ndarray:
    """The Default deployment: E/D contiguous experts per device, redundant slots left empty."""
    per = num_experts // devices
    if per * devices != num_experts or slots_per_device < per:
        raise ValueError(f"{num_experts} experts do not fit {devices} devices x {slots_per_device} slots "
                         f"as contiguous blocks")
    t = np.full((devices, slots_per_device), -1, np.int64)
    t[:, :per] = np.arange(num_experts).reshape(devices, per)
    return np.broadcast_to(t, (num_layers, devices, slots_per_device)).copy()


class Layout:
    """What PAR needs from the tables, recomputed only when a layer changes."""

    def __init__(self, tables: np.ndarray, num_experts: int):
        self.tables = tables
        self.E = num_experts
        L = tables.shape[0]
        self.ids = np.empty((L, tables.shape[1] * tables.shape[2]), np.int64)
        self.share = np.empty(self.ids.shape)  # 1 / copies of the slot's expert (0 if empty)
        for layer in range(L):
            self.update(layer)

    def update(self, layer: int) -> None:
        flat = self.tables[layer].ravel()
        valid = flat >= 0
        copies = np.bincount(flat[valid], minlength=self.E)
        if (copies == 0).any():
            raise ValueError(f"layer {layer}: expert {int(np.argmin(copies))} has no slot")
        self.ids[layer] = np.where(valid, flat, 0)
        self.share[layer] = np.where(valid, 1.0 / copies[self.ids[layer]], 0.0)

    def par(self, hot_iter: np.ndarray) -> np.ndarray:
        L, D, S = self.tables.shape
        dev = (np.take_along_axis(hot_iter, self.ids, 1) * self.share).reshape(L, D, S).sum(2)
        return dev.max(1) / dev.mean(1)

    def par_span(self, hot: np.ndarray, chunk: int = 256) -> np.ndarray:
        """PAR ``[n, L]`` of consecutive iterations ``hot [n, L, E]`` under the current tables."""
        L, D, S = self.tables.shape
        out = np.empty(hot.shape[:2])
        for a in range(0, len(hot), chunk):
            h = hot[a:a + chunk]
            dev = (np.take_along_axis(h, np.broadcast_to(self.ids, (len(h),) + self.ids.shape), 2)
                   * self.share).reshape(len(h), L, D, S).sum(3)
            out[a:a + chunk] = dev.max(2) / dev.mean(2)
        return out


def paced(items: list, layers: int, full_layers: int | None, idle: Any = None) -> list:
    """A redeployment's list as the loop takes it, one entry per iteration: when only ``layers`` of the model's
    ``full_layers`` are simulated, the j-th listed layer is followed by ``idle`` steps up to
    ``floor((j + 1) * full_layers / layers)``, so that a redeployment takes as many iterations as on the full
    model and calls fall where they would (each listed layer stands for ``full_layers / layers`` of them)."""
    if not full_layers or full_layers == layers:
        return list(items)
    if full_layers < layers:
        raise ValueError(f"full_layers={full_layers}: expected at least the {layers} layers simulated")
    out: list = []
    for j, item in enumerate(items):
        out += [item] + [idle] * ((j + 1) * full_layers // layers - j * full_layers // layers - 1)
    return out


def delay_iterations(seconds: float, iteration_seconds: float = 0.08) -> int:
    """Iterations a redeployment waits for a policy that ran ``seconds``: ceil(seconds / iteration)."""
    return math.ceil(seconds / iteration_seconds - 1e-9) if seconds > 0 else 0


def par(hot_iter: np.ndarray, tables: np.ndarray) -> np.ndarray:
    """PAR per layer for one iteration's hotness ``[L, E]`` under ``tables`` ``[L, D, S]``."""
    return Layout(np.asarray(tables), hot_iter.shape[1]).par(hot_iter)


def simulate(hot: np.ndarray, policy: Policy | None, spec: SimSpec,
             initial: np.ndarray | None = None, record: bool = False) -> dict:
    """Run ``policy`` (None: never redeploy) over hotness ``[I, L, E]``. Returns the per-iteration
    PAR ``[I, L]``, its mean over the whole trace and from the first call on, transmit, calls, the
    modelled time, the policy's measured wall time and the redeployment delay it was charged.

    With ``record``, also ``"initial"`` (the tables at the start, ``[L, D, S]``) and ``"changes"``: one
    ``(iteration, layer, table [D, S])`` per layer switch, in the order they happened, ``iteration``
    being the first one served by the new table. Replaying the changes over ``initial`` gives the final
    ``tables`` (``moelab.exports.replay``); an engine can be driven through the same sequence."""
    hot = np.asarray(hot, dtype=np.float64)
    if spec.zero_to_one:
        hot = np.where(hot == 0, 1.0, hot)
    I, L, E = hot.shape
    tables = contiguous(L, E, spec.devices, spec.slots_per_device) if initial is None else initial.copy()
    first = spec.interval if spec.first_call is None else spec.first_call  # by default once its interval has passed
    next_call = first
    pending: list[tuple[int, np.ndarray]] = []
    start_at = 0  # the iteration at which the pending redeployment may begin (after the policy's delay)
    layout = Layout(tables, E)
    start_tables = tables.copy() if record else None
    changes: list[tuple[int, int, np.ndarray]] = []
    pars = np.empty((I, L))
    transmit, calls, wall, delayed = 0, 0, 0.0, 0
    i = 0
    while i < I:
        if policy is not None and not pending and i == next_call:
            t0 = time.perf_counter()
            seen = hot[i:i + spec.window] if spec.oracle else hot[max(0, i - spec.window):i]
            new, order = policy(seen, tables.copy())
            seconds = time.perf_counter() - t0
            wall += seconds
            calls += 1
            delay = delay_iterations(seconds if spec.measured_delay else spec.policy_seconds,
                                     spec.iteration_seconds)
            delayed += delay
            start_at = i + delay
            pending = paced([(int(layer), new[layer]) for layer in order
                             if not np.array_equal(new[layer], tables[layer])], L, spec.full_layers)
            if not pending:
                next_call = i + spec.interval
        if pending and i >= start_at:
            step = pending.pop(0)
            if step is not None:  # None: an idle step standing for a layer not simulated
                layer, table = step
                transmit += int((table != tables[layer]).sum())
                tables[layer] = table
                layout.update(layer)
                if record:
                    changes.append((i, layer, tables[layer].copy()))
            if not pending:
                next_call = i + 1 + spec.interval
        pars[i] = layout.par(hot[i])
        i += 1
        # nothing changes until the next call or the next pending layer: take those iterations at once
        stop = I if policy is None else min(I, next_call)
        if pending:
            stop = min(stop, max(i, start_at))
        if stop > i:
            pars[i:stop] = layout.par_span(hot[i:stop])
            i = stop
    mean_par = float(pars.mean())
    modelled = spec.par_weight * mean_par + transmit * spec.slot_bytes / spec.bandwidth
    result = {"par": pars, "mean_par": mean_par, "mean_par_after_first_call": float(pars[min(first, I - 1):].mean()),
              "transmit": transmit, "calls": calls, "modelled_time": modelled, "policy_wall_s": wall,
              "delay_iterations": delayed, "tables": tables}
    if record:
        result["initial"] = start_tables
        result["changes"] = changes
    return result


def score(result: dict, baseline: dict) -> float:
    """The competition's score: 100 x modelled time of the baseline / that of the policy."""
    return 100.0 * baseline["modelled_time"] / result["modelled_time"]
