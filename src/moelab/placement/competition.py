"""The placement competition's evaluation loop, rule for rule (``docs/stages/placement.md``, "The competition's
loop").

The organisers' simulator is public; this module runs its loop as its code states it, so a number called "the
competition's score" follows the competition's rules. In the competition's words, iterations are counted from 1;
in iteration ``i``:

1. the PAR of every layer is taken with the tables in service (zero hotness counted as 1);
2. if a redeployment is pending and ``i`` is past the policy's finish iteration, ONE layer of the policy's
   priority list switches to its new row; a listed layer whose row did not change still takes its iteration;
   transmit grows by the slots whose expert id changed;
3. when the list is empty, the redeployment is finished at ``i``;
4. when ``i == finish + collection_interval + 1`` (finish 0 at the start), the policy is called with the window
   ``hotness[i - collection_interval : i]``: the last ``collection_interval`` iterations, the current one
   included. It returns ``(change, priority, table)``; ``change=False`` schedules nothing and leaves the finish
   where it was, so the policy is never called again. A call that took ``t`` seconds finishes at
   ``i + ceil(t / 0.08) - 1``, so its first layer switches at ``i + max(ceil(t / 0.08), 1)`` at the earliest.

Initial tables: Default has no redundant slots (E/D contiguous experts per device); a policy with redundant
slots starts from ``slots - 1`` contiguous experts per device and a copy of the device's last expert in its
last slot (the same PAR as Default; it counts in the first transmit).

One setting is ours, for a named reason: ``delay`` may fix each call's ``ceil(t / 0.08)`` from a modelled time
per call (deterministic tables); by default the loop measures the call, as the competition does. Everything
else is the competition's, its constants included (:func:`modelled_time`: not the config's ``placement.score``).

A policy here is the competition's API after its arguments are bound: ``policy(window) -> (change, priority,
table [L, D, S])``, the window ``[w, L, E]`` float64 with zeros already 1.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from moelab.placement.eplb import rebalance
from moelab.placement.simulator import Layout, paced

CompetitionPolicy = Callable[[np.ndarray], tuple[bool, np.ndarray, np.ndarray]]
ITERATION_SECONDS = 0.08  # the competition's iteration, the unit of a call's delay
PAR_WEIGHT, SLOT_BYTES, BANDWIDTH = 60.0, 88_080_384, 9e11  # its modelled time: 60 x PAR + slots x bytes / bw


def initial_tables(layers: int, experts: int, devices: int, redundant: bool) -> np.ndarray:
    """The competition's starting tables ``[L, D, S]``: E/D contiguous experts per device, and with a redundant
    slot per device (``redundant``) a copy of each device's last expert in it (S = E/D + 1)."""
    per = experts // devices
    if per * devices != experts:
        raise ValueError(f"{devices} devices do not split {experts} experts")
    slots = per + 1 if redundant else per
    t = np.empty((devices, slots), np.int64)
    t[:, :per] = np.arange(experts).reshape(devices, per)
    if redundant:
        t[:, per] = t[:, per - 1]
    return np.broadcast_to(t, (layers, devices, slots)).copy()


def delay_iterations(seconds: float) -> int:
    """``ceil(seconds / 0.08)``, as the competition's code computes it (in floating point, no tolerance)."""
    return math.ceil(seconds / ITERATION_SECONDS)


def modelled_time(mean_par: float, transmit: float) -> float:
    """The competition's modelled time, with its own constants (not the config's ``placement.score``)."""
    return PAR_WEIGHT * mean_par + transmit * SLOT_BYTES / BANDWIDTH


def simulate(hot: np.ndarray, policy: CompetitionPolicy | None, collection_interval: int, redundant: bool = True,
             *, devices: int, delay: Callable[[int, float], int] | None = None, full_layers: int | None = None) -> dict:
    """Run the competition's loop over hotness ``[I, L, E]`` with ``policy`` (None: Default, never called) on
    ``devices`` devices. ``delay(call, seconds)``: the iterations charged to a call (default: its measured
    ``ceil(seconds / 0.08)``, as the competition; a modelled number for deterministic tables).

    ``full_layers``: the model's layers when ``hot`` holds fewer of them (a quick run). A redeployment then takes
    as many iterations as it would on the full model: the j-th listed layer is followed by idle steps up to
    ``floor((j + 1) * full_layers / L)`` (:func:`moelab.placement.simulator.paced`), so calls fall where they would with every layer; the
    transmit stays the simulated layers' (the caller scales it).

    Returns the per-iteration PAR ``[I, L]``, its mean, transmit, calls, the iterations each call was charged,
    the policy's measured wall time, the modelled time and the final tables. Iterations with nothing to do are
    taken in spans (the literal loop, one iteration at a time, is in the tests and gives the same numbers)."""
    hot = np.asarray(hot, dtype=np.float64)  # no copy when it is float64 already (a caller running several policies)
    if (hot == 0).any():
        hot = np.where(hot == 0, 1.0, hot)
    I, L, E = hot.shape
    if policy is None:
        redundant = False
    tables = initial_tables(L, E, devices, redundant)
    layout = Layout(tables, E)
    staged = tables.copy()  # the rows the policy returned for its listed layers
    pars = np.empty((I, L))
    transmit, calls, wall, charged = 0, 0, 0.0, []
    finish, algo_finish, ready, pending = 0, 0, True, []
    called_off = policy is None
    i = 1
    while i <= I:
        pars[i - 1] = layout.par(hot[i - 1])
        if not ready and i > algo_finish and pending:
            layer = pending.pop(0)
            if layer >= 0:  # -1: an idle step standing for a layer not simulated
                transmit += int((tables[layer] != staged[layer]).sum())
                tables[layer] = staged[layer]
                layout.update(layer)
        if not ready and not pending:
            ready, finish = True, i
        if ready and not called_off and i == finish + collection_interval + 1:
            t0 = time.perf_counter()
            change, priority, table = policy(hot[i - collection_interval:i])
            seconds = time.perf_counter() - t0
            wall += seconds
            d = delay_iterations(seconds) if delay is None else int(delay(calls, seconds))
            calls += 1
            charged.append(d)
            if change:
                priority = [int(x) for x in np.asarray(priority).ravel()]
                table = np.asarray(table)
                if table.shape != tables.shape:
                    raise ValueError(f"call {calls} at iteration {i}: the policy returned a table of shape "
                                     f"{table.shape}, expected {tables.shape}")
                bad = [x for x in priority if not 0 <= x < L]
                if bad:
                    raise ValueError(f"call {calls} at iteration {i}: the priority list names layers {bad}, "
                                     f"expected 0 to {L - 1}")
                for layer in priority:
                    staged[layer] = table[layer]
                pending, ready = paced(priority, L, full_layers, idle=-1), False
            else:
                called_off = True  # nothing scheduled, the finish stays: never called again
            algo_finish = i + d - 1
        # the next iteration at which anything can happen; the ones before it only take their PAR
        if not ready:
            nxt = max(i + 1, algo_finish + 1) if pending else i + 1
        elif called_off:
            nxt = I + 1
        else:
            nxt = max(i + 1, finish + collection_interval + 1)
        nxt = min(nxt, I + 1)
        if nxt > i + 1:
            pars[i:nxt - 1] = layout.par_span(hot[i:nxt - 1])
        i = nxt
    mean_par = float(pars.mean())
    return {"par": pars, "mean_par": mean_par, "transmit": transmit, "calls": calls,
            "delay_iterations": int(sum(charged)), "charged": charged, "policy_wall_s": wall,
            "modelled_time": modelled_time(mean_par, transmit), "tables": tables}


def ds_eplb(hotness: np.ndarray, n_device: int, n_red_expert: int) -> tuple[bool, np.ndarray, np.ndarray]:
    """DS-EPLB as the competition runs it, through the same API as a submission: DeepSeek's EPLB (global) on the
    window's summed hotness, every layer listed in index order, ``change`` always True."""
    w, L, E = hotness.shape
    slots = (E + n_red_expert) // n_device
    table, _, _ = rebalance(np.asarray(hotness, np.float64).sum(0), n_device * slots, 1, 1, n_device)
    return True, np.arange(L), table.reshape(L, n_device, slots)


def score(result: dict, baseline: dict) -> float:
    """100 x the baseline's modelled time / the policy's."""
    return 100.0 * baseline["modelled_time"] / result["modelled_time"]
