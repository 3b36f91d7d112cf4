import numpy as np
import pytest

from moelab import stats
from moelab.synthetic import powerlaw


@pytest.mark.parametrize("alpha", [0.6, 1.0, 1.2, 1.6])
def test_fit_alpha_recovers_the_sampler(alpha):
    x = powerlaw.sample(np.random.default_rng(1), alpha, 20000, 1.0, 3276.8)
    assert stats.fit_alpha(x) == pytest.approx(alpha, abs=0.03)
    assert stats.fit_alpha(x * 37.5) == pytest.approx(stats.fit_alpha(x), abs=1e-4), "scale-free"


def test_fit_alpha_is_nan_when_all_equal():
    assert np.isnan(stats.fit_alpha(np.full(8, 5.0)))


def test_simple_measures():
    x = np.array([0, 0, 0, 10.0])
    assert stats.gini(np.ones(5)) == pytest.approx(0)
    assert stats.gini(x) == pytest.approx(0.75)
    assert stats.top_share(np.arange(1, 11.0)) == pytest.approx(19 / 55)
    assert stats.entropy_bits(np.ones(8)) == pytest.approx(3)
    assert stats.cv(np.array([1.0, 3.0])) == pytest.approx(0.5)


def test_layer_table_on_hand_made_hotness():
    hot = np.zeros((2, 1, 4), np.int64)
    hot[:, 0] = [[2, 2, 0, 0], [2, 1, 1, 0]]  # C=2, k=2
    row = stats.layer_table(hot, 2, 2, [2]).row(0, named=True)
    assert row["max_mean"] == pytest.approx(4 / 2)
    assert row["saturated_experts"] == 1  # expert 0 took every token
    assert row["zero_experts"] == 1
    assert row["dev2_max_mean"] == pytest.approx(7 / 4)
    assert row["dev2_max_mean_iter"] == pytest.approx((4 / 2 + 3 / 2) / 2)


def test_fit_alpha_is_nan_on_a_narrow_range():
    # multinomial noise around a balanced load: every alpha fits about equally well
    x = np.random.default_rng(1).multinomial(64 * 8 * 512, np.full(64, 1 / 64)).astype(float)
    assert x.max() / x.min() < 2
    assert np.isnan(stats.fit_alpha(x))
