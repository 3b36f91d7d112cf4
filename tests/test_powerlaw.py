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
        for ep in (1, 4, 64):
            loads = powerlaw.reference_batch_loads(w, 128, 8, ep=ep)
            assert loads.sum() == 128 * 8
            assert loads.max() <= 128 and loads.min() >= 0


def test_reference_batch_one_rank_gives_excess_to_the_least_loaded():
    # one expert wants 20 of 20 picks, cap 10: each of the 10 excess units to the least-loaded
    # expert below the cap, ties to the lowest id: 1, 2, 3, 1, 2, 3, 1, 2, 3, 1
    loads = powerlaw.reference_batch_loads(np.array([100.0, 1e-9, 1e-9, 1e-9]), 10, 2)
    assert loads.tolist() == [10, 4, 3, 3]


def test_reference_batch_saturated_case_by_hand():
    # E=6, k=3, 10 tokens: 30 picks, cap 10; weights are the wanted loads [16, 0, 0 | 6, 4, 4].
    # Expert 0 is capped at 10, 6 excess units. ep=2 (ranks {0,1,2}, {3,4,5}): passes over the ranks,
    # one unit each to the rank's least-loaded expert below the cap (ties: lowest id):
    #   pass 1: rank 0 [10,0,0] -> expert 1; rank 1 [6,4,4] -> expert 4
    #   pass 2: rank 0 [10,1,0] -> expert 2; rank 1 [6,5,4] -> expert 5
    #   pass 3: rank 0 [10,1,1] -> expert 1; rank 1 [6,5,5] -> expert 4
    w = np.array([16.0, 0, 0, 6, 4, 4])
    assert powerlaw.reference_batch_loads(w, 10, 3, ep=2).tolist() == [10, 2, 1, 6, 6, 5]
    # ep=1: one rank, every unit to the global least-loaded: 1, 2, 1, 2, 1, 2 (4 and 5 stay at 4)
    assert powerlaw.reference_batch_loads(w, 10, 3, ep=1).tolist() == [10, 3, 3, 6, 4, 4]
    # ep=6: one expert per rank; rank 0 is full and skipped, ranks 1..5 one unit each, then rank 1
    assert powerlaw.reference_batch_loads(w, 10, 3, ep=6).tolist() == [10, 2, 1, 7, 5, 5]


def test_reference_batch_rounds_half_to_even_then_fixes_the_total_per_rank():
    # 8 picks, E=4, ep=2; wanted [3.5, 1.5 | 1.5, 1.5] round to [4, 2 | 2, 2] = 10: two too many,
    # taken round-robin from each rank's most-loaded expert (ties: lowest id): expert 0, expert 2
    assert powerlaw.reference_batch_loads(np.array([3.5, 1.5, 1.5, 1.5]), 8, 1, ep=2).tolist() == [3, 2, 1, 2]
    # [2.5, 2.5 | 2.5, 0.5] round to [2, 2 | 2, 0] = 6: two short, each rank's least-loaded gains one
    assert powerlaw.reference_batch_loads(np.array([2.5, 2.5, 2.5, 0.5]), 8, 1, ep=2).tolist() == [3, 2, 2, 1]
    # k = E: [1.5, 1.5, 3] round to [2, 2, 3], capped at 2 with nowhere to put the excess: dropped
    assert powerlaw.reference_batch_loads(np.array([1.5, 1.5, 3.0]), 2, 3).tolist() == [2, 2, 2]


def one_unit_at_a_time(weights, tokens, top_k, ep):
    """The published rule simulated literally, one unit per step: the closed form's yardstick."""
    w = np.asarray(weights, dtype=np.float64)
    total = tokens * top_k
    c = np.rint(w / w.sum() * total).astype(np.int64)
    excess = int(np.maximum(c - tokens, 0).sum())
    ranks = np.minimum(c, tokens).reshape(ep, -1)

    def adjust(remaining, add):
        moved = True
        while remaining and moved:  # stops when no rank can move
            moved = False
            for r in range(ep):
                row = ranks[r]
                ok = np.flatnonzero(row < tokens) if add else np.flatnonzero(row > 0)
                if ok.size == 0:
                    continue
                i = ok[np.argmin(row[ok])] if add else ok[np.argmax(row[ok])]
                row[i] += 1 if add else -1
                remaining -= 1
                moved = True
                if remaining == 0:
                    break

    adjust(excess, True)
    delta = total - int(ranks.sum())
    adjust(abs(delta), delta > 0)
    return ranks.ravel()


@pytest.mark.parametrize("seed", range(12))
def test_reference_batch_closed_form_matches_one_unit_at_a_time(seed):
    rng = np.random.default_rng(seed)
    E = int(rng.choice([4, 6, 8, 12, 16]))
    ep = int(rng.choice([d for d in (1, 2, 3, 4, E) if E % d == 0]))
    top_k = int(rng.integers(1, min(E, 6) + 1))
    tokens = int(rng.integers(1, 40))
    alpha = float(rng.choice([0.5, 1.2, 2.5, 4.0]))
    w = powerlaw.sample(rng, alpha, E, 1.0, 1e4)
    if seed % 3 == 0:
        w = np.round(w * 2) / 2  # halves, to exercise rounding ties and surpluses
    got = powerlaw.reference_batch_loads(w, tokens, top_k, ep=ep)
    assert got.tolist() == one_unit_at_a_time(w, tokens, top_k, ep).tolist()
    assert got.sum() == tokens * top_k and got.max() <= tokens


def test_reference_batch_rejects_bad_ep():
    with pytest.raises(ValueError, match="divisible"):
        powerlaw.reference_batch_loads(np.ones(6), 4, 2, ep=4)
