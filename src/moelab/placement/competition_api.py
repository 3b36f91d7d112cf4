"""moelab's policy behind the placement competition's API (``docs/stages/placement.md``, "As a submission").

The evaluator calls ``rebalance(hotness, n_device, n_red_expert)`` with the last ``collection_interval``
iterations ``[w, L, E]`` and nothing else: not the tables in service, not the trace length. A submission may keep
state between calls, keyed by model shape and EP setting; :func:`reset` clears it between cases. So this module
keeps, per ``(layers, experts, n_device, n_red_expert)``, the tables its last answer put in service (the
evaluator switches every listed layer before it calls again), starting from the competition's initial tables.

Each call runs :func:`moelab.placement.policies.moelab_policy` on the window with the settings :func:`configure`
set (``placement.submission``), the evaluator's cadence (the window's length) and the competition's constants, and
answers ``(True, the changed layers by net saving, the tables)``: never ``change=False``, which would end every
later call. The trace length, which the ``pays`` test needs, is not given to a submission: the published traces'
lengths stand in (:data:`moelab.placement.published.TRACE_ITERATIONS`). The state carries over between two
cases of the same shape and EP size unless :func:`reset` is called between them.

numpy only (with :mod:`moelab.placement.assignment`'s numpy path), so :mod:`moelab.placement.submission` can
write it into a standalone file.
"""

from __future__ import annotations

from inspect import signature
from typing import Any

import numpy as np

from moelab.placement.competition import BANDWIDTH, PAR_WEIGHT, SLOT_BYTES, initial_tables
from moelab.placement.policies import moelab_policy
from moelab.placement.published import TRACE_ITERATIONS
from moelab.placement.simulator import SimSpec

DEFAULT_ITERATIONS = TRACE_ITERATIONS[58]  # a model of another depth: DS-R1's trace length
SETTINGS = frozenset(signature(moelab_policy).parameters) - {"spec", "total_iterations"}  # what configure takes

_settings: dict[str, Any] = {}
_state: dict[tuple[int, int, int, int], np.ndarray] = {}
_full_layers: list[int | None] = [None]  # a harness setting (stand_for), never the evaluator's


def configure(settings: dict[str, Any]) -> None:
    """moelab's policy settings (``SubmissionSpec.settings()``: ``placement.submission``; the cadence is the
    evaluator's). Clears the state."""
    if set(settings) != SETTINGS:
        raise ValueError(f"settings {sorted(settings)}: expected exactly {sorted(SETTINGS)}")
    _settings.clear()
    _settings.update(settings)
    reset()


def stand_for(full_layers: int | None) -> None:
    """A test harness's setting, not the evaluator's: the windows hold some of a model's ``full_layers`` layers
    (a quick run), so each moved slot stands for ``full_layers / L`` of them in the ``pays`` test, and the trace
    length is the full model's. None (as the evaluator leaves it): the window's layers are the model's."""
    _full_layers[0] = full_layers


def reset() -> None:
    """Forget every case's tables: the next call of each case starts from the competition's initial tables.
    The state is kept per model shape and EP setting, so two cases of the same shape and EP size run one after
    the other need a reset between them (the pipeline resets before each case)."""
    _state.clear()


def rebalance(hotness: np.ndarray, n_device: int, n_red_expert: int) -> tuple[bool, np.ndarray, np.ndarray]:
    """The competition's entry point: ``(change, priority, deployment [L, D, S])`` for the window ``hotness``."""
    if not _settings:
        raise RuntimeError("moelab's policy is not configured: call configure(settings) first")
    window = np.asarray(hotness, dtype=np.float64)
    w, L, E = window.shape
    if n_red_expert not in (0, n_device):
        raise ValueError(f"n_red_expert={n_red_expert}: the competition's initial tables hold 0 or one redundant "
                         f"slot per device ({n_device})")
    slots = (E + n_red_expert) // n_device
    key = (L, E, n_device, n_red_expert)
    current = _state.get(key)
    if current is None:
        current = initial_tables(L, E, n_device, n_red_expert > 0)
    full = _full_layers[0] or L
    spec = SimSpec(n_device, slots, window=max(w, 1), interval=max(w, 1), par_weight=PAR_WEIGHT,
                   slot_bytes=SLOT_BYTES * full / L, bandwidth=BANDWIDTH)
    if w == 0:  # nothing seen: keep what is in service
        _state[key] = current
        return True, np.zeros(0, np.int64), current.copy()
    policy = moelab_policy(spec, total_iterations=TRACE_ITERATIONS.get(full, DEFAULT_ITERATIONS), **_settings)
    new, order = policy(window, current.copy())
    changed = np.array([layer for layer in order if not np.array_equal(new[layer], current[layer])], np.int64)
    _state[key] = new
    return True, changed, new.copy()  # a copy: the evaluator may write into what it gets
