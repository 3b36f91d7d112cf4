import numpy as np
import polars as pl
import pytest

from moelab.grouping import window_cv, window_loads
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
    capped = static.place("coactivation_capped", fit, E, 8, rng, load_slack=0.05)
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


def phased_teams_router(rng, phase_tokens, hot_teams, strength=2.0, boost=4.0):
    """8 teams of 4 experts; a token leans to one team. The stream runs in phases, each with one hot team
    (``boost`` x as likely), as a serving mix moves between domains."""
    teams = np.arange(E).reshape(8, 4)
    out = []
    for hot in hot_teams:
        p = np.ones(8)
        p[hot] = boost
        team = rng.choice(8, phase_tokens, p=p / p.sum())
        logits = rng.normal(size=(phase_tokens, E))
        logits[np.arange(phase_tokens)[:, None], teams[team]] += strength
        out.append(np.argsort(-logits, 1)[:, :K])
    return np.concatenate(out)


@pytest.mark.parametrize("budget", [0.0, 0.02, 0.05])
def test_balanced_keeps_the_window_cv_within_its_budget(rng, budget):
    fit = phased_teams_router(rng, 2000, rng.permutation(8))
    W = window_loads(fit, E, 8)
    cv = {p: window_cv(W, static.place(p, fit, E, 8, rng, cv_budget=budget), 8)
          for p in ("frequency", "coactivation_balanced")}
    assert cv["coactivation_balanced"] <= cv["frequency"] + budget + 1e-12


def test_balanced_is_the_locality_you_can_keep_when_the_mix_moves(rng):
    """Every team is hot once in the fitted half, so the fitted totals balance and the cap lets whole teams
    share a device; the scored half has another mix (teams 0 and 1 hot three times each) and those devices
    swing with it. The window-CV budget sees the swing in the fitted half: its scored load CV stays below
    the capped placement's, and it still cuts the fan-out."""
    fit = phased_teams_router(rng, 2000, rng.permutation(8), boost=2.0)
    test = phased_teams_router(rng, 2000, [0, 1, 0, 1, 0, 1, 2, 3], boost=2.0)
    out = {p: static.score(test, static.place(p, fit, E, 8, rng, load_slack=0.05, cv_budget=0.02), 8, 16)
           for p in ("frequency", "coactivation_capped", "coactivation_balanced")}
    f, c, b = out["frequency"], out["coactivation_capped"], out["coactivation_balanced"]
    assert c["load_cv"] > f["load_cv"] + 0.015  # the capped placement follows the mix
    assert b["load_cv"] < c["load_cv"] - 0.015
    assert b["devices_per_token"] < f["devices_per_token"] - 0.1


def placement_rows(rows):
    """Per-layer score rows from (trace, devices, policy, cv_budget, dpt, cv, select_dpt, select_cv)."""
    return pl.DataFrame(rows, schema=["trace", "devices", "policy", "cv_budget", "devices_per_token", "load_cv",
                                      "select_devices_per_token", "select_load_cv"], orient="row").with_columns(
        layer=0, par=1.0, source_kind=pl.lit("captured"))


def test_matched_reading_takes_the_fewest_selection_devices_within_the_selection_cv_tolerance():
    from moelab import tables
    rows = [  # held-out scores equal to the selection ones here
        ("a", 4, "frequency", None, 4.0, 0.03, 4.0, 0.03), ("a", 4, "coactivation_capped", None, 3.0, 0.09, 3.0, 0.09),
        ("a", 4, "coactivation_balanced", 0.0, 3.8, 0.03, 3.8, 0.03),
        ("a", 4, "coactivation_balanced", 0.02, 3.4, 0.049, 3.4, 0.049),
        ("a", 4, "coactivation_balanced", 0.04, 3.2, 0.051, 3.2, 0.051),
        ("a", 4, "coactivation", None, 2.0, 0.5, 2.0, 0.5),
        ("b", 4, "frequency", None, 4.0, 0.01, 4.0, 0.01),
        ("b", 4, "coactivation_balanced", 0.0, 3.5, 0.2, 3.5, 0.2),
        ("c", 4, "frequency", None, 4.0, 0.05, 4.0, 0.05),  # better balanced than frequency also qualifies
        ("c", 4, "coactivation_balanced", 0.0, 3.9, 0.01, 3.9, 0.01),
    ]
    m = {r["trace"]: r for r in tables.static_matched(placement_rows(rows), 0.02).iter_rows(named=True)}
    assert m["a"]["matched_policy"] == "coactivation_balanced" and m["a"]["matched_cv_budget"] == 0.02
    assert m["a"]["vs_frequency"] == pytest.approx(-0.15)
    assert m["a"]["cv_vs_frequency"] == pytest.approx(0.019)
    assert m["a"]["tolerance_vs_frequency_cv"] == pytest.approx(0.02 / 0.03)
    assert (m["a"]["candidates"], m["a"]["within"]) == (4, 2)
    # nothing balanced enough: frequency-balanced itself, no margin
    assert (m["b"]["matched_policy"], m["b"]["vs_frequency"], m["b"]["within"]) == ("frequency", 0.0, 0)
    assert m["c"]["matched_policy"] == "coactivation_balanced"


def test_matched_choice_reads_only_fitted_data():
    """The held-out columns favour another candidate (and would exclude the chosen one under the tolerance):
    a rule that peeked would switch. The choice stays; only its reported held-out score follows them."""
    from moelab import tables
    rows = [
        ("a", 4, "frequency", None, 4.0, 0.03, 4.0, 0.03),
        ("a", 4, "coactivation_capped", None, 3.0, 0.031, 3.6, 0.08),  # best held out, unbalanced when selected
        ("a", 4, "coactivation_balanced", 0.0, 3.9, 0.09, 3.7, 0.04),  # best selected, unbalanced held out
        ("a", 4, "coactivation_balanced", 0.02, 3.5, 0.035, 3.8, 0.035),
    ]
    frame = placement_rows(rows)
    held_out = (tables.static_placement_summary(frame)
                .filter(pl.col("policy") != "frequency", pl.col("cv_vs_frequency") <= 0.02)
                .sort("devices_per_token").row(0, named=True))
    assert held_out["policy"] == "coactivation_capped"  # what a peeking rule would take
    m = tables.static_matched(frame, 0.02).row(0, named=True)
    assert (m["matched_policy"], m["matched_cv_budget"]) == ("coactivation_balanced", 0.0)
    assert m["vs_frequency"] == pytest.approx(3.9 / 4 - 1) and m["cv_vs_frequency"] == pytest.approx(0.06)
    # any held-out columns: the same choice; other selection columns: another one (the rule reads them)
    shuffled = frame.with_columns(pl.col("devices_per_token", "load_cv").shuffle(seed=1))
    assert tables.static_matched(shuffled, 0.02).row(0, named=True)["matched_policy"] == "coactivation_balanced"
    swapped = frame.with_columns(select_devices_per_token=pl.col("devices_per_token"),
                                 select_load_cv=pl.col("load_cv"))
    assert tables.static_matched(swapped, 0.02).row(0, named=True)["matched_policy"] == "coactivation_capped"


def test_selection_scores_and_placements_never_see_the_scored_iterations(rng):
    """Two traces that share their fitted iterations and differ after the split: one scored part like the
    fitted one, one where a single team is hot (so co-located teams overload a device there, and a rule that
    read held-out CV would choose differently). The selection columns, the placements and the choice agree."""
    from moelab import tables
    from moelab.placement import static_eval
    conc, D = 16, [4, 8]
    fit = phased_teams_router(rng, 1600, rng.permutation(8), boost=2.0)
    calm = phased_teams_router(rng, 1600, rng.permutation(8), boost=2.0)
    hot = phased_teams_router(rng, 1600, [0, 0, 0, 0, 1, 1, 1, 1], boost=6.0)
    out = {}
    for name, scored in (("calm", calm), ("hot", hot)):
        experts = np.concatenate([fit, scored])[:, None, :]
        scores, placed = static_eval.static_scores(experts, E, conc, len(fit), D, 0.5, 0.05, 7, [0.0, 0.02, 0.05])
        out[name] = (scores.with_columns(trace=pl.lit("t"), source_kind=pl.lit("captured")), placed)
    (calm_s, calm_p), (hot_s, hot_p) = out["calm"], out["hot"]
    select = ["select_devices_per_token", "select_load_cv", "select_par"]
    assert calm_s.select(select).equals(hot_s.select(select))
    assert calm_p.equals(hot_p)
    assert not calm_s.select("load_cv").equals(hot_s.select("load_cv"))
    # the selection fit: the first half of the fitted iterations, scored on their second half
    freq = calm_s.filter(pl.col("policy") == "frequency", pl.col("devices") == 8).row(0, named=True)
    half = len(fit) // 2
    assert static_eval.nested_split(len(fit), conc, 0.5) == half
    inner = static.place("frequency", fit[:half], E, 8, rng)
    assert freq["select_devices_per_token"] == static.score(fit[half:], inner, 8, conc)["devices_per_token"]

    def peeking(frame):  # the former rule: the candidate with the fewest held-out devices/token within the CV
        s = tables.static_placement_summary(frame)
        ok = s.filter(pl.col("policy").is_in(tables.MATCH_CANDIDATES), pl.col("cv_vs_frequency") <= 0.02)
        return {(r["devices"], r["policy"], r["cv_budget"]) for r in
                ok.sort("devices_per_token").group_by("devices", maintain_order=True).first().iter_rows(named=True)}

    assert peeking(calm_s) != peeking(hot_s)
    chosen = [tables.static_matched(f, 0.02).select("devices", "matched_policy", "matched_cv_budget")
              for f in (calm_s, hot_s)]
    assert chosen[0].equals(chosen[1])


def test_the_nested_split_needs_a_whole_fitted_iteration_on_each_side():
    from moelab.placement import static_eval
    assert static_eval.nested_split(8 * 16, 16, 0.5) == 4 * 16
    with pytest.raises(ValueError, match="placement.split_fraction"):
        static_eval.nested_split(1 * 16, 16, 0.5)


def test_a_trained_trace_reads_against_its_untrained_control_and_proxy():
    from moelab import tables
    rows = []
    # held-out devices/token of the chosen placement per trace and D (frequency at 4.0; selection = held out)
    for trace, by_d in {"captured-m": {4: 3.6, 8: 3.8, 16: 4.0}, "captured-m-untrained": {4: 3.8, 8: 3.9, 16: 4.0},
                        "proxy-m": {4: 3.9, 8: 4.0, 16: 4.0}, "captured-n": {4: 3.0, 8: 3.0, 16: 3.0}}.items():
        for D, dpt in by_d.items():
            rows += [(trace, D, "frequency", None, 4.0, 0.03, 4.0, 0.03),
                     (trace, D, "coactivation_capped", None, dpt, 0.03, dpt, 0.03)]
    m = tables.static_matched(placement_rows(rows), 0.02)
    got = {(r["trace"], r["devices"]): r for r in m.iter_rows(named=True)}
    # D=4: -10% against -5% (2x, met); D=8: -5% against -2.5% (met); D=16: no margin at all (missed)
    assert [got[("captured-m", D)]["goal_met"] for D in (4, 8, 16)] == [True, True, False]
    assert got[("captured-m", 4)]["control_vs_frequency"] == pytest.approx(-0.05)
    assert got[("captured-m", 4)]["proxy_vs_frequency"] == pytest.approx(-0.025)
    assert got[("captured-n", 4)]["goal_met"] is None  # no control: no verdict
    assert got[("captured-m-untrained", 4)]["goal_met"] is None
    assert tables.static_matched(placement_rows(rows), 0.02, factor=3).filter(
        pl.col("trace") == "captured-m").get_column("goal_met").to_list() == [False, False, False]
    verdict = tables.static_goal_verdict(m)
    assert "met at D = 4, 8, missed at D = 16" in verdict and "captured-n" not in verdict
