"""The physical bound on PAR: never above the best placement (brute force over every table of small
cases) nor above any simulated policy's PAR; reached when the load allows it."""

import itertools

import numpy as np
import pytest

from moelab.placement import policies
from moelab.placement import simulator as sim
from moelab.placement.bound import par_bound


def _best_par(load: np.ndarray, D: int, S: int) -> float:
    """The lowest PAR of any table the simulator accepts (every expert at least once, -1 = empty)."""
    E = load.size
    best = np.inf
    for flat in itertools.product(range(-1, E), repeat=D * S):
        flat = np.array(flat)
        if len(set(flat[flat >= 0].tolist())) < E:
            continue
        best = min(best, float(sim.par(load[None], flat.reshape(1, D, S))[0]))
    return best


@pytest.mark.parametrize("E,D,S", [(3, 2, 2), (4, 2, 3), (3, 3, 2), (5, 2, 3)])
def test_bound_never_exceeds_the_brute_force_optimum(E, D, S):
    rng = np.random.default_rng(E * 100 + D * 10 + S)
    for _ in range(6):
        load = rng.integers(1, 40, E).astype(float) ** rng.uniform(1, 2)
        bound = float(par_bound(load, D, S))
        opt = _best_par(load, D, S)
        assert 1.0 <= bound <= opt + 1e-12


def test_bound_is_reached_when_copies_can_balance_exactly():
    # loads 6, 2, 2, 2 on 2 devices x 3 slots: two copies of expert 0 (3 + 3) and 2 + 2 + 2 split 3 / 3
    load = np.array([6.0, 2, 2, 2])
    assert float(par_bound(load, 2, 3)) == pytest.approx(1.0)
    assert _best_par(load, 2, 3) == pytest.approx(1.0)
    # one dominant expert and no spare slot: the bound is its whole load against the mean
    assert float(par_bound(np.array([9.0, 1, 1, 1]), 4, 1)) == pytest.approx(9 / 3)


def test_bound_is_below_every_simulated_policy_on_random_cases():
    rng = np.random.default_rng(7)
    for trial in range(4):
        E, D = 16, 4
        hot = rng.poisson(rng.lognormal(2, 1, E), (40, 2, E)).astype(float)
        spec = sim.SimSpec(D, E // D + 1, window=8, interval=8)
        bound = par_bound(hot, D, E // D + 1)
        assert bound.shape == (40, 2)
        for policy in (None, policies.eplb_policy(spec), policies.moelab_policy(spec, total_iterations=40)):
            r = sim.simulate(hot, policy, spec)
            assert (bound <= r["par"] + 1e-12).all()


def test_bound_treats_zero_hotness_as_the_simulator_does_and_refuses_too_few_slots():
    assert float(par_bound(np.array([0.0, 0, 2, 2]), 2, 2)) == float(par_bound(np.array([1.0, 1, 2, 2]), 2, 2))
    with pytest.raises(ValueError, match="5 experts do not fit 2 devices x 2 slots"):
        par_bound(np.ones(5), 2, 2)


def test_bisection_finds_what_greedy_replication_reaches():
    from moelab.placement.bound import _heaviest_copy

    rng = np.random.default_rng(11)
    load = rng.lognormal(2, 1.2, (50, 24))
    for slots in (24, 25, 30, 48, 72):
        copies = np.ones_like(load)
        for _ in range(slots - 24):  # each spare slot to the currently heaviest copy
            e = np.argmax(load / copies, axis=1)
            copies[np.arange(50), e] += 1
        greedy = (load / copies).max(1)
        got = _heaviest_copy(load, slots)
        assert (got <= greedy).all() and np.allclose(got, greedy, rtol=1e-9)
