"""moelab.kernels.alpha_match and moelab.synthetic.alpha_fit: alphas matched within the sampled power-law
family (bands over draws), and the maximum-likelihood alpha in the generator's own terms."""

import numpy as np
import polars as pl
import pytest
from scipy import integrate
from scipy import stats as st

from moelab.kernels import alpha_match, shapes
from moelab.kernels.spec import AlphaSpec
from moelab.kernels.workloads import Workload
from moelab.spec import ConfigError
from moelab.synthetic import alpha_fit, powerlaw

REQUESTS = {"min": 4, "max": 40}
REFERENCE_TOKENS = 4096


def template(E, k, concurrency, tokens):
    """An empty workload: what the synthetic ones copy (experts, top-k, concurrency, tokens)."""
    return Workload("t", "captured", "t", E, k, concurrency, tokens, 0, 0, np.zeros((tokens, k), np.int64),
                    np.zeros((tokens, k), np.float32))


# ---- the sampled family and the matched interval -------------------------------------------------------------

LIKE = template(16, 4, 16, 256)
EP = 4
GRID = [round(0.1 + 0.2 * i, 2) for i in range(13)]  # 0.1 .. 2.5


@pytest.fixture(scope="module")
def sampled():
    return alpha_match.family(LIKE, GRID, 12, request_length=REQUESTS, reference_tokens=REFERENCE_TOKENS, seed=1)


@pytest.mark.parametrize("planted", [0.3, 0.8, 1.2])
def test_load_matched_interval_holds_a_planted_alpha(sampled, planted):
    # the "captured" workload: one more draw of the generator, from a seed no grid draw uses
    captured = alpha_match.synthetic_workload(planted, LIKE, REQUESTS, REFERENCE_TOKENS, seed=1000)
    frame = alpha_match.bands(alpha_match.load_table(captured, sampled, EP))
    point, low, high = alpha_match.matched(frame, "bottleneck_pairs")
    assert low <= planted <= high, f"planted {planted} outside the load-matched interval [{low}, {high}]"
    assert np.isnan(point) or low <= point <= high, f"point {point} outside its interval [{low}, {high}]"


def test_a_round_robin_batch_is_no_draw_of_the_family(sampled):
    # alpha = 0 in the generator is exact round-robin: no sampled alpha's band reaches a perfectly even rank
    ids = (np.arange(LIKE.tokens)[:, None] * LIKE.top_k + np.arange(LIKE.top_k)) % LIKE.num_experts
    even = Workload("rr", "captured", "rr", 16, 4, 16, LIKE.tokens, 0, 0, ids, np.ones(ids.shape, np.float32))
    frame = alpha_match.bands(alpha_match.load_table(even, sampled, EP))
    assert frame["bottleneck_pairs"][0] == LIKE.tokens * LIKE.top_k / EP
    assert all(np.isnan(v) for v in alpha_match.matched(frame, "bottleneck_pairs"))
    with pytest.raises(ValueError, match="round-robin"):
        alpha_match.synthetic_workload(0.0, LIKE, REQUESTS, REFERENCE_TOKENS, seed=1)


def test_draws_share_their_uniforms_across_alphas(sampled):
    # same seed, same scenario name: only alpha moves the experts, so draw d ranks its experts alike at every alpha
    loads = {(a, d): w.loads() for a, d, w in sampled if a in (0.5, 0.9)}
    same = [st.spearmanr(loads[0.5, d], loads[0.9, d])[0] for d in range(12)]
    other = [st.spearmanr(loads[0.5, d], loads[0.9, (d + 1) % 12])[0] for d in range(12)]
    assert min(same) > 0.8 and abs(np.mean(other)) < 0.3, (same, other)


def test_band_interval_interpolates_between_grid_points():
    xs = np.array([0.0, 1.0, 2.0, 3.0])
    low, high = np.array([0.0, 2.0, 4.0, 2.0]), np.array([2.0, 4.0, 6.0, 4.0])
    assert alpha_match.band_interval(xs, low, high, 3.0) == pytest.approx((0.5, 3.0))
    assert alpha_match.band_interval(xs, low, high, 5.0) == pytest.approx((1.5, 2.5))
    assert all(np.isnan(v) for v in alpha_match.band_interval(xs, low, high, 7.0))


def test_crossing_interpolates_and_says_when_there_is_none():
    xs = np.array([0.0, 1.0, 2.0])
    assert alpha_match.crossing(xs, np.array([1.0, 3.0, 5.0]), 2.0) == pytest.approx(0.5)
    assert alpha_match.crossing(xs, np.array([1.0, 3.0, 5.0]), 4.5) == pytest.approx(1.75)
    assert np.isnan(alpha_match.crossing(xs, np.array([1.0, 3.0, 5.0]), 9.0))


def test_measure_and_summarise_carry_what_the_figure_needs():
    like = template(16, 4, 16, 64)
    captured = alpha_match.synthetic_workload(0.8, like, REQUESTS, REFERENCE_TOKENS, seed=1000)
    rows = alpha_match.measure(captured, shapes.MoEShape("s", hidden=32, ffn=16, experts=16, top_k=4),
                               [0.4, 1.2], EP, request_length=REQUESTS, reference_tokens=REFERENCE_TOKENS, seed=1,
                               rounds=1, iters=1, draws=2, warmup=1)
    assert rows.height == 1 + 2 * 2 and rows["source"][0] == "captured"
    fit = alpha_match.mle(captured, REFERENCE_TOKENS)
    out = alpha_match.summarise(rows, fit)
    assert out["source"].to_list() == ["captured", "sampled", "sampled"] and out["draws"].to_list() == [1, 2, 2]
    syn = out.filter(pl.col("source") == "sampled")
    for m in ("bottleneck_pairs", "latency_p50_ms"):
        assert (syn[f"{m}_low"] <= syn[m]).all() and (syn[m] <= syn[f"{m}_high"]).all()
    r = out.row(0, named=True)
    assert (r["mle_alpha"], r["mle_alpha_low"], r["mle_alpha_high"]) == (fit.alpha, fit.low, fit.high)
    assert r["captured_bottleneck_pairs"] == rows["bottleneck_pairs"][0]
    for name in ("latency_matched", "load_matched"):
        assert {f"{name}_alpha", f"{name}_alpha_low", f"{name}_alpha_high"} <= set(out.columns)


def test_alpha_spec_is_a_grid_of_sampled_alphas():
    block = {"lowest": 0.05, "highest": 2.5, "points": 50, "draws": 4, "rounds": 1, "iters": 1}
    grid = AlphaSpec.from_config(block).alphas()
    assert len(grid) == 50 and grid[0] == 0.05 and grid[-1] == 2.5 and grid[1] == 0.1
    for bad, key in (({"lowest": 0.0}, "lowest"), ({"highest": 0.01}, "highest"), ({"draws": 1}, "draws"),
                     ({"points": 2}, "points"), ({"lowest": "0.1"}, "lowest")):
        with pytest.raises(ConfigError, match=f"kernels.alpha: .*{key}"):
            AlphaSpec.from_config(block | bad)
    with pytest.raises(ConfigError, match="unknown keys \\['alphas'\\]"):
        AlphaSpec.from_config(block | {"alphas": [0.0, 1.0]})


# ---- maximum likelihood ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("alpha", [0.0, 0.7, 1.0, 2.5])
def test_likelihood_is_the_generators_integral(alpha):
    """Each expert's likelihood against direct quadrature of Binomial(n | N k, min(1, lam x) / k) pdf(x) dx."""
    N, k, xmax = 64, 2, powerlaw.xmax_for(REFERENCE_TOKENS)
    for lam in (1e-4, 3e-3, 0.05):
        for n in (0, 1, 5, 40, 64):
            def f(u):
                x = np.exp(u)
                pdf = powerlaw.pdf(np.array([x]), alpha, 1, xmax)[0]
                return st.binom.pmf(n, N * k, min(1.0, lam * x) / k) * pdf * x
            kinks = sorted({np.log(np.clip(n / N / lam, 1, xmax)), np.log(np.clip(1 / lam, 1, xmax))})
            want, _ = integrate.quad(f, 0, np.log(xmax), points=kinks, limit=500, epsabs=0, epsrel=1e-10)
            got = alpha_fit._loglik(alpha, np.array([np.log(lam)]), np.array([n]), np.array([1]), N, k, xmax)[0]
            assert got == pytest.approx(np.log(want), abs=1e-6), f"lam={lam}, n={n}"


@pytest.mark.parametrize("planted", [0.3, 0.8, 1.2])
def test_mle_recovers_a_planted_alpha(planted):
    # 64 experts over 1024 tokens: the fit's spread over seeds is about 0.1, so 0.25 is a miss, not noise
    like = template(64, 8, 64, 1024)
    w = alpha_match.synthetic_workload(planted, like, REQUESTS, REFERENCE_TOKENS, seed=1000)
    fit = alpha_match.mle(w, REFERENCE_TOKENS)
    assert fit.alpha == pytest.approx(planted, abs=0.25)
    assert fit.low <= planted <= fit.high, f"planted {planted} outside [{fit.low}, {fit.high}]"
    assert fit.high - fit.low < 0.6, "the interval says nothing"


def test_mle_reads_even_loads_as_the_far_end():
    # perfectly even loads: more even than any draw of the law, so the fit runs to the search's upper end
    fit = alpha_fit.fit(np.full(16, 32), 64, 8, powerlaw.xmax_for(REFERENCE_TOKENS), max_alpha=4.0)
    assert fit.alpha == pytest.approx(4.0, abs=0.01) and fit.high == pytest.approx(4.0)


def test_mle_refuses_loads_it_cannot_read():
    xmax = powerlaw.xmax_for(REFERENCE_TOKENS)
    for loads, tokens in ((np.array([5, 70]), 64), (np.array([-1, 3]), 64), (np.zeros(4, int), 64),
                          (np.array([64, 64, 64]), 64)):
        with pytest.raises(ValueError, match="loads"):
            alpha_fit.fit(loads, tokens, 2, xmax)
