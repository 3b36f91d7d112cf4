"""The competition's loop: moelab's fast version against the loop stated literally, from the published rules."""

import math

import numpy as np
import pytest

from moelab.placement import competition


def literal_loop(hot, policy, devices, collection_interval, redundant, delay):
    """The organisers' loop as its rules read, one iteration at a time, counted from 1 (slow on purpose).

    In iteration i: take every layer's PAR with the tables in service; if a redeployment is pending and i is past
    the policy's finish iteration, switch ONE layer from the priority list (a listed layer whose row did not
    change still takes its iteration); when the list is empty the redeployment is finished at i; the policy is
    called when i == finish + collection_interval + 1, with hotness[i - collection_interval : i]; change=False
    schedules nothing; a call charged d iterations finishes at i + d - 1."""
    hot = hot.astype(np.float64).copy()
    hot[hot == 0] += 1  # zero hotness counts as 1
    n_iter, n_layers, n_experts = hot.shape
    per = n_experts // devices
    slots = per + 1 if redundant else per
    table = np.zeros((devices, slots), dtype=int)
    for d in range(devices):
        if not redundant:
            for j in range(slots):
                table[d, j] = (d * slots + j) % n_experts
        else:
            for j in range(slots - 1):
                table[d, j] = (d * (slots - 1) + j) % n_experts
            table[d, -1] = table[d, -2]
    current = np.array([table.copy() for _ in range(n_layers)])
    nxt = np.zeros_like(current)
    pars = np.zeros((n_iter, n_layers))
    transmit = 0
    finish_redeploy, finish_algo, ready, priority = 0, 0, True, []
    calls, windows, unchanged = 0, [], 0
    for i in range(1, n_iter + 1):
        h = hot[i - 1]
        for layer in range(n_layers):
            dep = current[layer]
            cut = np.bincount(dep.reshape(-1), minlength=n_experts)
            loads = (h[layer] / cut)[dep.reshape(-1)].reshape(dep.shape).sum(-1)
            pars[i - 1, layer] = loads.max() / loads.mean()
        if policy is None:
            continue
        if not ready and i > finish_algo and len(priority) > 0:
            layer = priority.pop(0)
            unchanged += int(np.array_equal(current[layer], nxt[layer]))
            transmit += int(np.sum(current[layer] != nxt[layer]))
            current[layer] = nxt[layer]
        if len(priority) == 0 and not ready:
            ready = True
            finish_redeploy = i
        if i == finish_redeploy + collection_interval + 1 and ready:
            window = hot[i - collection_interval:i]
            windows.append(window.copy())
            change, layers, new = policy(window)
            if change:
                priority = list(layers)
                ready = False
                nxt[layers] = new[layers]
            finish_algo = i + delay(calls) - 1
            calls += 1
    return pars, transmit, calls, windows, unchanged


def random_policy(seed, n_layers, devices, slots, n_experts, seen):
    """A policy whose answers are a fixed function of its call number: partial and reordered priority lists,
    layers listed whose row does not change, every expert kept, and now and then change=False."""
    rng = np.random.default_rng(seed)
    answers = []
    for _ in range(64):
        change = rng.random() > 0.08
        table = np.empty((n_layers, devices, slots), int)
        for layer in range(n_layers):
            ids = np.concatenate([np.arange(n_experts), rng.integers(0, n_experts, devices * slots - n_experts)])
            table[layer] = rng.permutation(ids).reshape(devices, slots)
        k = int(rng.integers(0, n_layers + 1))
        priority = rng.permutation(n_layers)[:k]
        answers.append((change, priority, table))
    calls = iter(answers)
    initial = competition.initial_tables(n_layers, n_experts, devices, slots > n_experts // devices)
    state = {"in_service": initial}  # every listed layer is switched before the next call

    def policy(window):
        seen.append(window.copy())
        change, priority, table = next(calls)
        if len(priority):  # the first listed layer keeps the row in service: listed, unchanged
            table = table.copy()
            table[priority[0]] = state["in_service"][priority[0]]
        if change:
            state["in_service"] = state["in_service"].copy()
            state["in_service"][priority] = table[priority]
        return change, priority, table

    return policy


def run_case(case):
    """One random case through both loops: (fast result, (pars, transmit, calls, windows, unchanged), the windows
    each policy saw)."""
    rng = np.random.default_rng(100 + case)
    devices = int(rng.choice([2, 4]))
    n_experts = devices * int(rng.integers(1, 4))
    n_layers, n_iter = int(rng.integers(1, 4)), int(rng.integers(1, 90))
    interval = int(rng.choice([0, 1, 2, 3, 7, 16]))
    redundant = bool(rng.random() < 0.8)
    default = rng.random() < 0.1
    hot = rng.poisson(rng.gamma(0.7, 4, size=(n_iter, n_layers, n_experts))).astype(np.float32)  # with zeros
    delays = rng.integers(0, 21, size=64)  # 0 to 20 iterations per call

    def delay(call, seconds=0.0):
        return int(delays[call])

    slots = n_experts // devices + (1 if redundant and not default else 0)
    fast_seen, slow_seen = [], []
    fast = competition.simulate(hot, None if default else random_policy(case, n_layers, devices, slots, n_experts,
                                                                          fast_seen),
                                interval, redundant, devices=devices, delay=delay)
    slow = literal_loop(hot, None if default else random_policy(case, n_layers, devices, slots, n_experts, slow_seen),
                        devices, interval, redundant and not default, delay)
    return fast, slow, fast_seen, slow_seen


@pytest.mark.parametrize("case", range(40))
def test_the_fast_loop_is_the_literal_loop(case):
    fast, (pars, transmit, calls, windows, _), fast_seen, slow_seen = run_case(case)
    np.testing.assert_allclose(fast["par"], pars, rtol=1e-12)
    assert fast["transmit"] == transmit and fast["calls"] == calls == len(windows)
    assert len(fast_seen) == len(slow_seen)
    for a, b in zip(fast_seen, slow_seen):
        assert np.array_equal(a, b)  # the same windows, empty ones included
    assert fast["mean_par"] == pytest.approx(pars.mean())
    assert fast["modelled_time"] == pytest.approx(60 * pars.mean() + transmit * 88_080_384 / 9e11)


def test_the_random_cases_list_unchanged_layers_and_empty_windows():
    """The cases above are worth their name: listed layers that keep their row and empty windows occur in them
    (change=False has its own test below)."""
    unchanged, empty = [], 0
    for case in range(40):
        fast, slow, seen, _ = run_case(case)
        unchanged.append(slow[4])
        empty += sum(len(w) == 0 for w in seen)
    assert sum(unchanged) >= 10 and sum(map(bool, unchanged)) >= 5
    assert empty >= 1


def test_change_false_ends_every_later_call_and_the_window_holds_the_current_iteration():
    hot = np.arange(1, 1 + 40 * 2 * 4, dtype=float).reshape(40, 2, 4)
    seen = []

    def never(window):
        seen.append(window)
        return False, np.array([]), None

    r = competition.simulate(hot, never, 8, devices=2, delay=lambda c, s: 0)
    assert r["calls"] == 1 and r["transmit"] == 0
    assert np.array_equal(seen[0], hot[1:9])  # called at iteration 9 (from 1): iterations 2..9, the current one


def test_the_first_switch_comes_one_iteration_after_the_call_at_the_earliest():
    hot = np.tile(np.array([4.0, 2, 1, 1]), (12, 1, 1))
    better = np.array([[[0, 3, 3], [1, 2, 1]]])  # device loads 6 and 2 at the start, 5 and 3 after: PAR 1.5 -> 1.25

    def policy(window):
        return True, np.array([0]), better

    for d, switch in ((0, 4), (1, 4), (3, 6)):
        r = competition.simulate(hot, policy, 2, devices=2, delay=lambda c, s, d=d: d)
        # called at iteration 3 (from 1); the layer switches at 3 + max(d, 1) and serves from the next one
        changed = np.flatnonzero(np.diff(r["par"][:, 0]))
        assert changed[0] + 1 == switch, (d, changed)


def test_initial_tables_delays_and_bad_answers():
    t = competition.initial_tables(1, 8, 2, redundant=True)
    assert t[0].tolist() == [[0, 1, 2, 3, 3], [4, 5, 6, 7, 7]]
    assert competition.initial_tables(1, 8, 2, redundant=False)[0].tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]
    # ceil(t / 0.08) in floating point, as the competition's code: 0.56 / 0.08 is 7.000000000000001
    assert competition.delay_iterations(0.24) == 3 and competition.delay_iterations(1.10) == 14
    assert competition.delay_iterations(0.0) == 0 and competition.delay_iterations(0.56) == 8
    assert math.isclose(competition.modelled_time(1.0, 0), 60.0)
    hot = np.ones((20, 2, 8))
    with pytest.raises(ValueError, match=r"call 1 at iteration 5: the priority list names layers \[2\]"):
        competition.simulate(hot, lambda w: (True, np.array([0, 2]), competition.initial_tables(2, 8, 2, True)),
                             4, devices=2, delay=lambda c, s: 0)
    with pytest.raises(ValueError, match=r"a table of shape \(1, 2, 5\), expected \(2, 2, 5\)"):
        competition.simulate(hot, lambda w: (True, np.array([0]), np.zeros((1, 2, 5), int)), 4, devices=2)
