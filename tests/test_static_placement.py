import numpy as np
import pytest

from moelab.placement import static

E, K = 32, 4


def teams_router(rng, n, strength=1.5):
    teams = np.arange(E).reshape(8, 4)
    logits = rng.normal(size=(n, E)) + np.linspace(1, 0, E)  # popularity too
    logits[np.arange(n)[:, None], teams[rng.integers(0, 8, n)]] += strength
    return np.argsort(-logits, 1)[:, :K]


@pytest.mark.parametrize("policy", static.POLICIES)
def test_every_policy_gives_equal_devices(policy, rng):
    ex = teams_router(rng, 4000)
    dev = static.place(policy, ex, E, 8, rng)
    assert np.bincount(dev, minlength=8).tolist() == [4] * 8


def test_coactivation_touches_fewer_devices_and_the_cap_keeps_balance(rng):
    ex = teams_router(rng, 20_000)
    fit, test = ex[:10_000], ex[10_000:]
    out = {p: static.score(test, static.place(p, fit, E, 8, rng), 8, 16) for p in static.POLICIES}
    assert out["coactivation"]["devices_per_token"] < out["frequency"]["devices_per_token"] - 0.3
    assert out["coactivation_capped"]["devices_per_token"] < out["frequency"]["devices_per_token"]
    loads = np.bincount(fit.ravel(), minlength=E)
    capped = static.place("coactivation_capped", fit, E, 8, rng, slack=0.05)
    dev_load = np.bincount(capped, weights=loads, minlength=8)
    assert dev_load.max() <= 1.05 * dev_load.mean() + 1e-9 or \
        dev_load.max() <= np.bincount(static.place("frequency", fit, E, 8, rng), weights=loads).max()


def test_score_by_hand():
    ex = np.array([[0, 1], [0, 2], [1, 3], [2, 3]])
    dev = np.array([0, 0, 1, 1])
    r = static.score(ex, dev, 2, 2)
    assert r["devices_per_token"] == pytest.approx(1.5)
    assert r["load_cv"] == pytest.approx(0.0)
    # iteration 0: device loads (3, 1) -> PAR 1.5; iteration 1: (1, 3) -> 1.5
    assert r["par"] == pytest.approx(1.5)
