"""The pinned dynamic-placement grid: its cells, rows, scores, bound, oracle and the competition's score."""

import numpy as np
import polars as pl
import pytest

from moelab.placement import simulator as sim
from moelab.placement.dynamic_grid import (CellSpec, GridSpec, evaluate_cell, evaluate_hotness,
                                          popularity_oracle, sim_specs)
from moelab.placement.hotness_model import HotnessModel
from moelab.placement.policy_specs import DynamicPolicies, SubmissionSpec
from moelab.spec import ConfigError

GRID = dict(workloads=["ShareGPT", "Qwen3"], eps=[32, 256], drift_scales=[0, 1], seeds=[1],
            tuning={"workload": "ShareGPT", "ep": 32, "drift_scale": 1, "seed": 1},
            layers=2, iterations=600, seconds_per_call={"DS-EPLB": 0.1, "moelab": 0.3, "submission": 0.5},
            seconds_source="test",
            iteration_seconds=0.08)
PLACEMENT = {"eplb": {"call_interval": 128, "window": 128},
             "policy": dict(call_interval=64, window=128, halflife=32, accept="pays", min_gain=0.01, horizon_calls=1,
                            max_moves=4, recount_steps=0),
             "score": {"zero_to_one": True, "par_weight": 60.0, "slot_bytes": 88080384.0, "bandwidth": 9e11}}
POL = DynamicPolicies.from_config(PLACEMENT)
MODEL = HotnessModel(58, 256, 8, 5902, 0.62, 7000, 9e-5)


def test_grid_cell_rows_scores_bound_and_gap():
    cell = CellSpec.from_config(GRID)
    both = evaluate_cell(MODEL, cell, POL, 32, 1.0, 1, delays=("modelled", "measured"))
    everything = both["modelled"]
    t = everything.filter(~pl.col("eplb_variant"))
    assert t["policy"].to_list() == ["Default", "DS-EPLB", "moelab"]
    for col in ("workload", "ep", "drift_scale", "seed", "policy", "mean_par", "mean_par_after_first_call", "bound_par",
                "transmit", "seconds_per_call", "score_vs_eplb", "gap_closed"):
        assert col in t.columns
    assert (t["bound_par"] <= t["mean_par"]).all()
    eplb = t.filter(policy="DS-EPLB").row(0, named=True)
    assert eplb["score_vs_eplb"] == pytest.approx(100) and eplb["gap_closed"] == pytest.approx(0)
    assert t.filter(policy="Default")["gap_closed"][0] < 0 and t.filter(policy="Default")["transmit"][0] == 0
    # the modelled seconds delay each call's redeployment: ceil(0.3 / 0.08) = 4 iterations per moelab call
    ours = t.filter(policy="moelab").row(0, named=True)
    assert ours["delay_iterations"] == 4 * ours["calls"] and ours["seconds_per_call"] == 0.3
    assert everything.equals(evaluate_cell(MODEL, cell, POL, 32, 1.0, 1)["modelled"])  # deterministic
    # 2 of the model's 58 layers run: the score counts their transmit scaled to all 58
    assert (t["transmit_scale"] == 29).all()
    assert ours["modelled_time"] == pytest.approx(60 * ours["mean_par"] + ours["transmit"] * 29 * 88080384 / 9e11)
    assert ours["gb_moved"] == pytest.approx(ours["transmit"] * 29 * 88080384 / 1e9)
    # (c): DS-EPLB as a user could configure it, a row each; the strongest is the one with the least time
    variants = everything.filter(pl.col("eplb_variant"))
    assert variants["policy"].to_list() == ["DS-EPLB@256", "DS-EPLB@512", "DS-EPLB@1024", "DS-EPLB@2048",
                                            "DS-EPLB@4096", "DS-EPLB at moelab's cadence", "DS-EPLB early"]
    v = {r["policy"]: r for r in variants.iter_rows(named=True)}
    assert (v["DS-EPLB at moelab's cadence"]["call_interval"], v["DS-EPLB early"]["first_call"],
            v["DS-EPLB early"]["call_interval"]) == (64, 64, 128)
    assert v["DS-EPLB@256"]["first_call"] == 256 and v["DS-EPLB@4096"]["calls"] == 0  # 600 iterations
    eplbs = everything.filter(pl.col("policy").str.starts_with("DS-EPLB"))
    strongest = eplbs.sort("modelled_time").row(0, named=True)
    assert (everything["strongest_eplb"] == strongest["policy"]).all()
    assert strongest["score_vs_strongest"] == pytest.approx(100)
    assert ours["score_vs_strongest"] == pytest.approx(100 * strongest["modelled_time"] / ours["modelled_time"])
    assert ours["score_vs_strongest"] <= ours["score_vs_eplb"] + 1e-9
    assert variants["competition_score"].is_nan().all()  # the competition runs DS-EPLB at its interval only
    # 2 of 58 layers: a redeployment takes 58 iterations, as on the full model; DS-EPLB at moelab's cadence is
    # called at 64, 64 + delay 2 + 58 + 64, ...
    assert v["DS-EPLB at moelab's cadence"]["calls"] == len(range(64, 600, 64 + 2 + 58))
    # measured delays: the same hotness and bound, Default untouched, each policy's own measured time
    m = both["measured"].filter(~pl.col("eplb_variant"))
    assert m["bound_par"].equals(t["bound_par"])
    assert m.filter(policy="Default")["mean_par"][0] == t.filter(policy="Default")["mean_par"][0]
    assert (m.filter(policy="moelab")["seconds_per_call"] > 0).all()


def test_each_grid_policy_is_first_called_at_its_own_interval_and_compared_on_one_span():
    # as in the competition's simulator: DS-EPLB first at its 128, moelab first at its 64; PAR "after the first
    # call" is taken from DS-EPLB's first call on for every policy, so it compares placements, not warm-ups
    cell = CellSpec.from_config(GRID)
    hot = cell.model(MODEL, 1.0).generate(1)  # the cell's 2 layers x 600 iterations
    t = evaluate_hotness(hot, cell, POL, 32)["modelled"].filter(~pl.col("eplb_variant"))
    assert t["first_call"].to_list() == [None, 128, 64]
    runs = {name: sim.simulate(hot, policy, spec) for name, (policy, spec) in (
        ("Default", (None, sim_specs(cell, POL, 256, 32, False)["Default"])),
        ("moelab", (POL.moelab.build(sim_specs(cell, POL, 256, 32, False)["moelab"], 600),
                    sim_specs(cell, POL, 256, 32, False)["moelab"])))}
    for name, r in runs.items():
        row = t.filter(policy=name).row(0, named=True)
        assert row["mean_par"] == pytest.approx(r["mean_par"])
        assert row["mean_par_after_first_call"] == pytest.approx(r["par"][128:].mean())
    # moelab's changes start before DS-EPLB's first call: its PAR there is below Default's
    assert runs["moelab"]["par"][70:128].mean() < runs["Default"]["par"][70:128].mean()


def test_the_popularity_oracle_places_the_expected_counts_and_serves_the_sampled_ones():
    model = HotnessModel(2, 64, 4, 300, 0.8, 500, 1e-3)
    hot, expected = model.generate_with_expected(3)
    assert np.array_equal(hot, model.generate(3))  # the same draws: the hotness is the grid's
    assert np.allclose(expected.sum(2), 4 * 500, rtol=1e-5)  # top_k x tokens per iteration, no noise
    # without noise the oracle is DS-EPLB's placement of each iteration's own load: close to balance
    exact = popularity_oracle(expected, expected, 8, 100)
    noisy = popularity_oracle(hot, expected, 8, 100)
    assert 1.0 <= exact < 1.02 and noisy > exact + 0.02  # what is left is the sampling noise
    # every 16th iteration from the start on, by hand
    served = np.where(hot == 0, 1.0, hot).astype(float)  # zero hotness counts as 1, as in the simulator
    pars = [sim.par(served[i], eplb_table(expected[i], 8)).mean() for i in range(100, 300, 16)]
    assert noisy == pytest.approx(np.mean(pars))
    # a grid cell reports it next to the bound, the same for every policy; DS-EPLB closes none of its gap to it
    t = evaluate_cell(MODEL, CellSpec.from_config(GRID), POL, 32, 1.0, 1)["modelled"]
    assert t["oracle_par"].n_unique() == 1 and 1.0 < t["oracle_par"][0] < t["mean_par_after_first_call"].min()
    ours, eplb = (t.filter(policy=p).row(0, named=True) for p in ("moelab", "DS-EPLB"))
    assert ours["oracle_gap_closed"] == pytest.approx(
        (eplb["mean_par_after_first_call"] - ours["mean_par_after_first_call"])
        / (eplb["mean_par_after_first_call"] - ours["oracle_par"]))
    # an imported load has no expected counts: no oracle
    imp = evaluate_hotness(hot[:, :, :64], CellSpec.from_config(GRID), POL, 8)["modelled"]
    assert imp["oracle_par"].is_nan().all()


def eplb_table(load: np.ndarray, ep: int) -> np.ndarray:
    from moelab.placement.eplb import rebalance

    L, E = load.shape
    table, _, _ = rebalance(load, ep * (E // ep + 1), 1, 1, ep)
    return table.reshape(L, ep, E // ep + 1)


def test_seconds_per_call_per_ep_size():
    cell = CellSpec.from_config({**GRID, "seconds_per_call": {"DS-EPLB": 0.1, "moelab": {32: 0.3, 256: 1.7},
                                                         "submission": 0.5}})
    assert cell.seconds("moelab", 256) == 1.7 and cell.seconds("DS-EPLB", 256) == 0.1
    assert sim_specs(cell, POL, 256, 256, False)["moelab"].policy_seconds == 1.7
    assert "moelab EP32 0.3 s, EP256 1.7 s" in cell.seconds_text()
    with pytest.raises(ValueError, match=r"seconds_per_call.moelab: no time for EP64 \(has EP 32, 256\)"):
        cell.seconds("moelab", 64)
    for bad in ({32: -1}, {}, {0: 0.1}, {32: True}, {"x": 0.1}):
        with pytest.raises(ConfigError, match="seconds_per_call="):
            CellSpec.from_config({**GRID, "seconds_per_call": {"DS-EPLB": 0.1, "moelab": bad, "submission": 0.5}})
    with pytest.raises(ConfigError, match="expected non-negative seconds for DS-EPLB, moelab, submission"):
        CellSpec.from_config({**GRID, "seconds_per_call": {"DS-EPLB": 0.1, "moelab": 0.3}})
    # every grid EP size needs a time, checked when the config is read (before any job runs)
    with pytest.raises(ConfigError, match="no time for EP256"):
        GridSpec.from_config({**GRID, "seconds_per_call": {"DS-EPLB": 0.1, "moelab": {32: 0.3}, "submission": 0.5}})


def test_the_verdict_names_the_cells_moelab_loses_in_score_and_in_placement_alone():
    from moelab.placement.dynamic_grid import verdict

    rows = [{"workload": "Mix", "ep": 32, "drift_scale": d, "seed": 1, "policy": p, "score_vs_eplb": sc,
             "mean_par_after_first_call": a}
            for d, p, sc, a in ((0.0, "moelab", 112.0, 1.10), (0.0, "DS-EPLB", 100.0, 1.07),
                                (1.0, "moelab", 99.0, 1.11), (1.0, "DS-EPLB", 100.0, 1.17))]
    text = verdict(pl.DataFrame(rows))
    assert text.startswith("moelab ahead of DS-EPLB (score above 100) in 1 of 2 cells; not ahead in Mix EP32 x1 "
                           "seed 1 (99.0)")
    assert "above DS-EPLB's in 1 of 2 cells" in text and "Mix EP32 x0 seed 1 (1.100 vs 1.070)" in text
    better = verdict(pl.DataFrame(rows[2:]))
    assert better.endswith("not above DS-EPLB's in any cell")
    # with the competition's score, it comes first and is named as such; the strongest DS-EPLB, last
    comp = verdict(pl.DataFrame(rows).with_columns(competition_score=pl.Series([104.0, 100.0, 96.0, 100.0]),
                                                   score_vs_strongest=pl.Series([101.0, 100.0, 97.0, 100.0]),
                                                   strongest_eplb=pl.Series(["DS-EPLB@256"] * 4)))
    assert comp.startswith("(a) the competition's score (moelab, as a submission, called at DS-EPLB's cadence in the "
                           "competition's loop): mean 100.0, worst 96.0, above 100 in 1 of 2 cells; (b) at its own "
                           "cadence")
    assert comp.endswith("(c) against the strongest DS-EPLB a user could configure in each cell: mean 99.0, worst "
                         "97.0, ahead in 1 of 2 cells; not ahead in Mix EP32 x1 seed 1 (97.0 vs DS-EPLB@256)")


def test_grid_spec_roles_and_checks():
    grid = GridSpec.from_config(GRID)
    t = grid.roles(pl.DataFrame({"workload": ["ShareGPT", "ShareGPT", "ShareGPT", "Qwen3"], "ep": [32, 32, 256, 32],
                                 "drift_scale": [1.0, 0.0, 1.0, 1.0], "seed": [1, 1, 1, 1]}))
    assert t["role"].to_list() == ["tuning", "held out", "held out", "held out"]
    with pytest.raises(ConfigError, match="the tuning cell must be one of the grid's cells"):
        GridSpec.from_config({**GRID, "tuning": {"workload": "ShareGPT", "ep": 64, "drift_scale": 1, "seed": 1}})
    with pytest.raises(ConfigError, match="the tuning cell must be one of the grid's cells"):
        GridSpec.from_config({**GRID, "tuning": {"workload": "Mix", "ep": 32, "drift_scale": 1, "seed": 1}})
    # a workload runs on the EP sizes that split its experts: Qwen3's 128 experts, not on 256 devices
    assert grid.cells({"ShareGPT": 256, "Qwen3": 128}) == [
        "ShareGPT/ep32-drift0-seed1", "ShareGPT/ep32-drift1-seed1", "ShareGPT/ep256-drift0-seed1",
        "ShareGPT/ep256-drift1-seed1", "Qwen3/ep32-drift0-seed1", "Qwen3/ep32-drift1-seed1"]
    assert [GridSpec.cell_keys(c) for c in grid.cells({"ShareGPT": 256, "Qwen3": 128})][3] == {
        "workload": "ShareGPT", "ep": 256, "drift_scale": 1.0, "seed": 1}  # a name back to its keys
    with pytest.raises(ValueError, match="not a grid cell's name"):
        GridSpec.cell_keys("ShareGPT/ep32")


def test_a_policy_that_sees_the_coming_window_is_refused_outside_the_labelled_oracle():
    from moelab.placement import dynamic_grid

    spec = sim.SimSpec(32, 9, window=8, interval=8, oracle=True)
    with pytest.raises(ValueError, match="sees the coming window"):
        dynamic_grid.check_no_oracle({"moelab": spec})
    dynamic_grid.check_no_oracle({"moelab": sim.SimSpec(32, 9, window=8, interval=8)})


def test_grid_summary_counts_the_cells_ahead_per_ep_and_over_all():
    from moelab.placement.dynamic_grid import summary

    rows = [{"policy": "moelab", "eplb_variant": False, "workload": "ShareGPT", "drift_scale": 1.0, "ep": ep,
             "seed": s, "score_vs_eplb": score, "mean_par": 1.2, "mean_par_after_first_call": 1.1, "bound_par": 1.0,
             "transmit": 10, "gb_moved": 0.9, "seconds_per_call": 0.05, "gap_closed": 0.2, "oracle_par": 1.05,
             "oracle_gap_closed": 0.4, "competition_score": score - 5, "score_vs_strongest": score - 8}
            for ep, s, score in ((32, 1, 110.0), (32, 2, 98.0), (256, 1, 104.0), (256, 2, 106.0))]
    variant = {**rows[0], "policy": "DS-EPLB@256", "eplb_variant": True}  # a variant is a grid row, not a summary one
    t = summary(pl.DataFrame([*rows, variant]))
    assert t["ep"].to_list() == ["32", "256", "all"]
    assert t["cells_ahead"].to_list() == [1, 2, 3] and t["cells"].to_list() == [2, 2, 4]
    assert t.filter(ep="all")["mean_score"][0] == pytest.approx(104.5)
    assert t.filter(ep="32")["worst_score"][0] == 98.0
    assert t.filter(ep="all")["mean_competition_score"][0] == pytest.approx(99.5)
    assert t.filter(ep="32")["worst_competition_score"][0] == 93.0
    assert t.filter(ep="all")["mean_score_vs_strongest"][0] == pytest.approx(96.5) and set(t["policy"]) == {"moelab"}


def test_the_competitions_score_runs_the_written_submission_at_the_evaluators_cadence(tmp_path):
    from moelab.placement import competition, submission

    path = tmp_path / "submission.py"
    submission.write(path, SubmissionSpec(**POL.moelab.settings()))
    cell = CellSpec.from_config(GRID)
    hot = cell.model(MODEL, 1.0).generate(1)
    t = evaluate_hotness(hot, cell, POL, 32, submission=submission.load(path))["modelled"]
    rows = {r["policy"]: r for r in t.iter_rows(named=True)}
    assert rows["DS-EPLB"]["competition_score"] == pytest.approx(100)
    assert rows["Default"]["competition_transmit"] == 0 and rows["Default"]["competition_calls"] == 0
    # moelab as the evaluator runs it: every 128 iterations (DS-EPLB's interval, not its own 64), the
    # competition's loop and initial tables, the submission's ceil(0.5 / 0.08) = 7 iterations per call
    again = submission.load(path)
    direct = competition.simulate(hot, lambda w: again.rebalance(w, 32, 32), 128, devices=32,
                                  delay=lambda call, seconds: 7)
    assert rows["moelab"]["competition_mean_par"] == pytest.approx(direct["mean_par"])
    assert rows["moelab"]["competition_transmit"] == direct["transmit"] > 0
    eplb = competition.simulate(hot, lambda w: competition.ds_eplb(w, 32, 32), 128, devices=32,
                                delay=lambda call, seconds: 2)
    assert rows["moelab"]["competition_score"] == pytest.approx(competition.score(direct, eplb))
    # without a submission the columns are there, empty
    bare = evaluate_hotness(hot, cell, POL, 32)["modelled"]
    assert bare["competition_score"].is_nan().all()
