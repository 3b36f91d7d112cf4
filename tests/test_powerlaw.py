import numpy as np
import pytest
from scipy import integrate, stats

from moelab.synthetic import powerlaw


def independent_cdf(alpha, xmin, xmax):
    """CDF by numerical integration of x^-alpha: independent of our closed forms."""
    norm = integrate.quad(lambda t: t**-alpha, xmin, xmax, limit=200)[0]
    return lambda x: np.array([integrate.quad(lambda t: t**-alpha, xmin, v, limit=200)[0] / norm
                               for v in np.atleast_1d(x)])


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0, 1.0 + 1e-12, 1.01, 1.2, 2.0])
def test_sampler_matches_integrated_pdf_by_ks(alpha):
    rng = np.random.default_rng(7)
    xmax = powerlaw.xmax_for(4096)
    x = powerlaw.sample(rng, alpha, 4000, 1.0, xmax)
    assert x.min() >= 1.0 and x.max() <= xmax
    res = stats.kstest(x, independent_cdf(alpha, 1.0, xmax))
    assert res.pvalue > 0.01, f"alpha={alpha}: KS D={res.statistic:.4f} p={res.pvalue:.3g}"


def test_alpha_one_is_the_limit_of_neighbours():
    u = np.linspace(0, 1, 11)
    mid = powerlaw.ppf(u, 1.0, 1.0, 1000.0)
    near = powerlaw.ppf(u, 1.0 + 1e-6, 1.0, 1000.0)
    np.testing.assert_allclose(mid, near, rtol=1e-4)


def test_sampler_rejects_bad_arguments():
    with pytest.raises(ValueError, match="alpha"):
        powerlaw.ppf(np.array([0.5]), -0.1, 1, 10)
    with pytest.raises(ValueError, match="xmin"):
        powerlaw.ppf(np.array([0.5]), 1.2, 10, 1)


def test_reference_batch_is_exact_and_capped():
    rng = np.random.default_rng(3)
    for alpha in (1.01, 1.2, 2.5):
        w = powerlaw.profile(rng, alpha, 64, 4096)[0]
        loads = powerlaw.reference_batch_loads(w, 128, 8)
        assert loads.sum() == 128 * 8
        assert loads.max() <= 128 and loads.min() >= 0


def test_reference_batch_spreads_excess_round_robin():
    # one expert wants everything: capped at tokens, rest spread one by one from the lowest id
    loads = powerlaw.reference_batch_loads(np.array([100.0, 1e-9, 1e-9, 1e-9]), 10, 2)
    assert loads.tolist() == [10, 4, 3, 3]
