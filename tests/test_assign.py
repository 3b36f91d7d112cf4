import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moelab.synthetic import assign as A
from moelab.synthetic import loads as L
from moelab.synthetic import powerlaw


def realised_loads(a, I, C, E):
    out = np.zeros((I, E), np.int64)
    np.add.at(out, (np.repeat(np.arange(I), a.shape[1] * C), a.reshape(I, -1).ravel()), 1)
    return out


def random_loads(seed, E, k, C, I, alpha=1.2):
    rng = np.random.default_rng(seed)
    pi = L.cap_profile(powerlaw.profile(rng, alpha, E, 4096, layers=I), k)
    return L.draw_multinomial(rng, pi, C, k)


@settings(max_examples=40, deadline=None)
@given(E=st.integers(2, 40), k=st.integers(1, 8), C=st.integers(1, 40), I=st.integers(1, 6),
       seed=st.integers(0, 2**32 - 1), pairing=st.sampled_from(A.PAIRINGS))
def test_exact_loads_and_k_distinct_sorted_experts(E, k, C, I, seed, pairing):
    k = min(k, E)
    loads = random_loads(seed, E, k, C, I)
    a = A.assign(loads, C, k, pairing, np.random.default_rng(seed))
    assert a.shape == (I * C, k)
    if k > 1:
        assert (np.diff(a.astype(np.int64), axis=1) > 0).all(), "duplicate or unsorted expert in a row"
    np.testing.assert_array_equal(realised_loads(a, I, C, E), loads)


def test_blocked_token_major_is_the_transpose_of_the_reference_layout():
    loads = random_loads(1, 32, 4, 16, 5)
    np.testing.assert_array_equal(A.assign_blocked_kT(loads, 16, 4).T, A.assign(loads, 16, 4, "blocked"))


def test_blocked_gives_the_first_slot_the_first_experts():
    loads = np.full((3, 8), 4)  # C=8, k=4, E=8
    a = A.assign(loads, 8, 4, "blocked")
    assert a[0].tolist() == [0, 2, 4, 6] and a[8].tolist() == [0, 2, 4, 6]


def test_shuffled_breaks_the_blocked_coactivation(rng):
    """Blocked pairs experts adjacent in id order; shuffled pairs by chance. Compare the rate at
    which experts e and e+1 co-occur with the rate expected from their loads."""
    E, k, C, I = 16, 4, 32, 400
    loads = np.full((I, E), C * k // E)
    def adjacent_rate(a):
        onehot = np.zeros((a.shape[0], E), bool)
        np.put_along_axis(onehot, a.astype(np.int64), True, axis=1)
        return (onehot[:, :-1] & onehot[:, 1:]).mean()
    chance = (k / E) * ((k - 1) / (E - 1))
    blocked = adjacent_rate(A.assign(loads, C, k, "blocked"))
    shuffled = adjacent_rate(A.assign(loads, C, k, "shuffled", rng))
    assert blocked == 0.0  # blocked never pairs neighbours at this shape: pure artefact
    assert shuffled == pytest.approx(chance, rel=0.1)


def test_shuffled_is_deterministic_in_the_rng():
    loads = random_loads(2, 24, 3, 10, 4)
    a = A.assign(loads, 10, 3, "shuffled", np.random.default_rng(5))
    b = A.assign(loads, 10, 3, "shuffled", np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)


def test_token_loop_baseline_has_the_same_margins():
    loads = random_loads(3, 16, 4, 12, 3)
    a = A.assign_token_loop(loads, 12, 4)
    np.testing.assert_array_equal(realised_loads(a, 3, 12, 16), loads)


def test_bad_loads_are_rejected():
    with pytest.raises(ValueError, match="sum to"):
        A.assign(np.array([[3, 3]]), 4, 2, "blocked")
    with pytest.raises(ValueError, match="concurrency"):
        A.assign(np.array([[5, 3]]), 4, 2, "blocked")


@pytest.mark.parametrize("C", [256, 2 * A.TILE + 7])  # one tile; several tiles (bucketed token shuffle)
def test_shuffled_token_order_carries_no_pairing(C):
    """Consecutive tokens of an iteration share no more experts than two tokens picked at random:
    the column-wise read gives neighbouring columns nearly the same set, so without a uniform
    token permutation neighbours would share about k-1 experts."""
    E, k, I = 64, 8, max(3, 6000 // C)
    rng = np.random.default_rng(11)
    loads = L.draw_multinomial(rng, np.full((I, E), k / E), C, k)  # near-uniform: chance is ~k*k/E
    a = A.assign(loads, C, k, "shuffled", rng).astype(np.int64).reshape(I, C, k)
    onehot = np.zeros((I, C, E), np.int8)
    np.put_along_axis(onehot, a, 1, axis=2)
    neighbours = (onehot[:, 1:] * onehot[:, :-1]).sum(axis=2).mean()
    # two distinct tokens of an exchangeable iteration share expert e with chance l(l-1) / (C(C-1))
    chance = (loads * (loads - 1)).sum(axis=1).mean() / (C * (C - 1))
    assert neighbours == pytest.approx(chance, rel=0.1)
    assert chance < 0.25 * (k - 1)


def test_shuffled_spans_several_tiles_with_exact_margins():
    E, k, C, I = 48, 6, 2 * A.TILE + 333, 2
    loads = random_loads(9, E, k, C, I)
    big = np.zeros((I * C, 3, k), np.uint16)  # the trace layout: write one layer of a [T, L, k] array
    a = A.assign(loads, C, k, "shuffled", np.random.default_rng(2), out=big[:, 1])
    assert (np.diff(a.astype(np.int64), axis=1) > 0).all()
    np.testing.assert_array_equal(realised_loads(a, I, C, E), loads)
    assert not big[:, 0].any() and not big[:, 2].any()


def test_loads_that_are_not_integers_are_rejected():
    with pytest.raises(ValueError, match="integers"):
        A.assign(np.array([[2.0, 2.0]]), 2, 2, "blocked")
