"""Expert grouping (moelab.grouping): pair counts, equal-size clustering, window loads and CV."""

import numpy as np
import pytest

from moelab import grouping


def test_pair_counts_count_each_token_pair_once():
    ex = np.array([[0, 1, 2], [0, 1, 3]], np.uint16)
    m = grouping.pair_counts(ex, 4)
    assert m[0, 1] == m[1, 0] == 2 and m[2, 3] == 0 and m[0, 3] == 1 and np.trace(m) == 0
    assert m.sum() == 2 * 2 * 3  # tokens x pairs per token x both orientations


def test_cluster_gives_equal_groups():
    a = np.random.default_rng(1).normal(size=(12, 12))
    labels = grouping.cluster(a + a.T, 3)
    assert sorted(np.bincount(labels)) == [4, 4, 4]
    with pytest.raises(ValueError, match="equal groups"):
        grouping.cluster(a, 5)


def test_window_loads_cover_the_stream_in_order():
    ex = np.array([[0, 1], [0, 2], [1, 3], [2, 3], [3, 0]])
    W = grouping.window_loads(ex, 4, 2)
    np.testing.assert_array_equal(W, [[2, 2, 1, 1], [1, 0, 1, 2]])
    np.testing.assert_array_equal(W.sum(0), np.bincount(ex.ravel(), minlength=4))


def test_window_cv_is_zero_for_a_perfectly_balanced_grouping_and_grows_with_swing():
    W = np.array([[1.0, 1.0, 1.0, 1.0], [2.0, 2.0, 2.0, 2.0]])
    assert grouping.window_cv(W, np.array([0, 0, 1, 1]), 2) == 0.0
    swing = np.array([[2.0, 2.0, 0.0, 0.0], [0.0, 0.0, 2.0, 2.0]])
    assert grouping.window_cv(swing, np.array([0, 0, 1, 1]), 2) == 1.0  # each window: loads 4 and 0
    assert grouping.window_cv(swing, np.array([0, 1, 0, 1]), 2) == 0.0


def test_intra_share_counts_pairs_inside_groups():
    pairs = np.array([[0, 3, 1], [3, 0, 0], [1, 0, 0]])
    assert grouping.intra_share(pairs, np.array([0, 0, 1])) == 6 / 8
