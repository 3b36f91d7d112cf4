import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moelab.synthetic import loads as L
from moelab.synthetic import powerlaw


def test_cap_profile_sums_to_k_and_caps_at_one(rng):
    p = powerlaw.profile(rng, 1.5, 32, 1 << 20, layers=50)
    pi = L.cap_profile(p, 8)
    np.testing.assert_allclose(pi.sum(axis=1), 8)
    assert pi.max() <= 1 + 1e-12
    assert (pi == 1).any(), "a heavy profile should pin some experts at 1"


@settings(max_examples=40, deadline=None)
@given(E=st.integers(2, 40), k=st.integers(1, 8), C=st.integers(1, 50), alpha=st.floats(0, 3),
       seed=st.integers(0, 2**32 - 1), method=st.sampled_from(["multinomial", "systematic"]))
def test_draws_have_exact_totals_and_caps(E, k, C, alpha, seed, method):
    k = min(k, E)
    rng = np.random.default_rng(seed)
    pi = L.cap_profile(powerlaw.profile(rng, alpha, E, 4096, layers=6), k)
    loads = L.draw_loads(rng, pi, C, k, method)
    assert (loads.sum(axis=1) == C * k).all()
    assert loads.min() >= 0 and loads.max() <= C


def test_systematic_loads_are_floor_or_ceil(rng):
    pi = L.cap_profile(powerlaw.profile(rng, 1.2, 64, 4096, layers=200), 8)
    loads = L.draw_systematic(rng, pi, 64, 8)
    exp = 64 * pi
    assert (loads >= np.floor(exp) - 1e-9).all() and (loads <= np.ceil(exp) + 1e-9).all()


@pytest.mark.parametrize("E,k,factor", [(60, 4, 3.0), (256, 8, 3.0), (64, 8, 1.5), (64, 8, 8.0)])
def test_exponential_profile_hits_the_factor(E, k, factor):
    p = L.exponential_profile(E, factor)
    assert p.sum() == pytest.approx(1.0)
    assert E * p.max() == pytest.approx(factor, rel=1e-9)
    assert (np.diff(p) <= 0).all()


def test_worst_case_ep_swap_matches_the_reference_example():
    loads = np.array([180, 110, 210, 140, 850, 620, 480, 320, 70, 280, 55, 40, 30, 85, 20, 10])
    perm = L.worst_case_ep_permutation(loads, 4)
    assert loads[perm].tolist() == [850, 620, 480, 320, 180, 110, 210, 140, 70, 280, 55, 40, 30, 85, 20, 10]
    groups = loads[perm].reshape(4, 4).sum(axis=1)
    assert groups[0] == groups.max() == 2270


def test_worst_case_ep_rejects_indivisible():
    with pytest.raises(ValueError, match="divisible"):
        L.worst_case_ep_permutation(np.ones(10), 4)
