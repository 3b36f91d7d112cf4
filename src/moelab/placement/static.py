"""Static expert placement on D devices (E/D experts each), fitted before a split, scored after.

Policies: ``random``; ``frequency`` (balanced packing of the fitted loads, EPLB's packing rule);
``coactivation`` (experts that fire together on one device, unconstrained: it may overload
devices); ``coactivation_capped`` (the same objective, starting from the frequency placement and
never letting a device's fitted load exceed ``(1 + load_slack)`` x the mean); ``coactivation_balanced``
(the same objective from the same start under a balance budget over time: the fitted stream is
cut into ``balance_windows`` consecutive windows, and the mean over windows of the device-load CV may
exceed the frequency placement's by at most ``cv_budget``). A cap balances the fitted totals, but
co-activated experts tend to serve one domain, so their loads move together: a device of them
swings with the mix, and the scored half has a different mix. The window CV measures that swing
on the fitted part, where the scored CV cannot be seen.

Scores on the held-out iterations: distinct devices touched per token (the all-to-all fan-out),
load CV across devices, and PAR (per-iteration max / mean device load, averaged).
"""

from __future__ import annotations

import numpy as np

from moelab.grouping import cluster, pair_counts, window_cv, window_loads
from moelab.placement.eplb import balanced_packing

POLICIES = ("random", "frequency", "coactivation", "coactivation_capped", "coactivation_balanced")


def place(policy: str, experts: np.ndarray, num_experts: int, devices: int, rng: np.random.Generator,
          load_slack: float = 0.05, balance_windows: int = 8, cv_budget: float = 0.02) -> np.ndarray:
    """Device of each expert ``[E]``, fitted on ``experts`` ``[tokens, k]`` (in stream order)."""
    E = num_experts
    if E % devices:
        raise ValueError(f"{E} experts do not split evenly over {devices} devices")
    loads = np.bincount(experts.ravel(), minlength=E).astype(np.float64)
    if policy == "random":
        return rng.permutation(np.repeat(np.arange(devices), E // devices))
    freq = balanced_packing(loads[None, :], devices)[0][0]
    if policy == "frequency":
        return freq
    pairs = pair_counts(experts, E).astype(np.float64)
    if policy == "coactivation":
        return cluster(pairs, devices, order_hint=np.lexsort((np.arange(E), -loads)))
    if policy == "coactivation_capped":
        cap = (1 + load_slack) * loads.sum() / devices
        cap = max(cap, float((loads @ np.eye(devices)[freq]).max()))  # the start must be feasible
        return cluster(pairs, devices, init=freq, loads=loads, cap=cap)
    if policy == "coactivation_balanced":  # the window CV bounds the fitted totals' imbalance too
        W = window_loads(experts, E, balance_windows)
        return cluster(pairs, devices, init=freq, window_loads=W, cv_budget=window_cv(W, freq, devices) + cv_budget)
    raise ValueError(f"placement policy {policy!r}: expected one of {POLICIES}")


def score(experts: np.ndarray, device: np.ndarray, devices: int, concurrency: int) -> dict:
    """Devices per token, device-load CV and mean per-iteration PAR of ``experts`` ``[tokens, k]``
    (whole iterations, in stream order) under the placement ``device``."""
    dev = device[experts]  # [T, k]
    s = np.sort(dev, axis=1)
    per_token = 1 + (s[:, 1:] != s[:, :-1]).sum(1)
    total = np.bincount(dev.ravel(), minlength=devices).astype(np.float64)
    n_it = experts.shape[0] // concurrency  # whole iterations only
    rows = dev[:n_it * concurrency].reshape(n_it, -1) + devices * np.arange(n_it)[:, None]
    per_iter = np.bincount(rows.ravel(), minlength=n_it * devices).reshape(n_it, devices)
    par = per_iter.max(1) / per_iter.mean(1)
    return {"devices_per_token": float(per_token.mean()), "load_cv": float(total.std() / total.mean()),
            "par": float(par.mean())}
