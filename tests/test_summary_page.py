"""The summary page reads each headline from the tables it is given, next to the right baseline."""

import polars as pl
import pytest

from moelab import summary_page

CMD = "snakemake --cores all {target} --configfile config/test.yaml"


def coact() -> pl.DataFrame:
    return pl.DataFrame({"trace": ["cap", "cap", "syn", "syn"], "source_kind": ["captured", "captured"] + ["synthetic"] * 2,
                         "gain": [1.2, 1.4, 3.0, 3.0], "gain_null": [1.0, 1.02, 1.0, 1.0],
                         "split": ["documents"] * 4})


def test_each_row_is_read_from_its_table_next_to_its_baseline():
    out = summary_page.build({"coactivation": coact()}, CMD)
    assert out.height == 1  # synthetic traces are not headlines: their structure is planted
    r = out.row(0, named=True)
    assert r["workload"] == "cap (captured)" and r["value"] == pytest.approx(1.3)
    assert r["baseline_value"] == pytest.approx(1.01) and r["dispersion"] == "1.200 to 1.400 over 2 layers"
    assert r["regenerate"] == "snakemake --cores all results/tables/coactivation.html --configfile config/test.yaml"


def test_the_cache_headline_is_the_best_online_policy_against_lru_with_beladys_bound():
    rows = []
    for layer in (0, 1):
        for policy, miss in (("lru", 0.5), ("lfu", 0.4), ("coact", 0.45), ("belady", 0.3)):
            rows.append({"layer": layer, "capacity": 2, "policy": policy, "miss_rate": miss + 0.01 * layer,
                         "trace": "cap", "source_kind": "captured"})
            rows.append({"layer": layer, "capacity": 4, "policy": policy, "miss_rate": miss / 2,
                         "trace": "cap", "source_kind": "captured"})
    r = summary_page.build({"cache": pl.DataFrame(rows)}, CMD).row(0, named=True)
    assert "(lfu), capacity 2" in r["result"]
    assert r["value"] == pytest.approx(0.405) and r["baseline_value"] == pytest.approx(0.505)
    assert r["bound"] == pytest.approx(0.305) and r["reading"] == "better than the baseline"


def test_rows_come_in_the_tables_order_every_time():
    """Same tables, same bytes: traces keep the order of the table (a hash-ordered group-by would not)."""
    rows = [{"layer": layer, "capacity": 2, "policy": policy, "miss_rate": 0.5, "trace": trace,
             "source_kind": "captured"} for trace in ("t3", "t1", "t2", "t0") for layer in (0, 1)
            for policy in ("lru", "lfu", "belady")]
    for _ in range(20):
        out = summary_page.build({"cache": pl.DataFrame(rows)}, CMD)
        assert out["workload"].to_list() == [f"{t} (captured)" for t in ("t3", "t1", "t2", "t0")]


def test_the_grid_headline_is_per_rate_scale_over_workloads_ep_and_seeds_three_ways():
    grid = pl.DataFrame({"workload": ["ShareGPT", "Mix", "ShareGPT", "Mix", "ShareGPT"],
                         "ep": [32, 64, 32, 64, 32], "drift_scale": [1.0, 1.0, 1.0, 1.0, 0.0],
                         "seed": [1, 1, 1, 1, 1], "policy": ["moelab", "moelab", "DS-EPLB", "DS-EPLB", "moelab"],
                         "score_vs_eplb": [104.0, 98.0, 100.0, 100.0, 101.0], "gap_closed": [0.5, -0.1, 0, 0, 0.2],
                         "bound_par": [1.1, 1.2, 1.1, 1.2, 1.0], "mean_par": [1.2, 1.3, 1.25, 1.3, 1.1],
                         "mean_par_after_first_call": [1.15, 1.25, 1.2, 1.28, 1.05]})
    out = summary_page.build({"dynamic_grid": grid}, CMD)
    x1 = out.filter(pl.col("result").str.contains("fitted rates")).row(0, named=True)
    assert x1["result"].startswith("(b) score against DS-EPLB at moelab's own cadence")
    assert x1["value"] == pytest.approx(101.0) and x1["baseline_value"] == 100.0
    assert x1["workload"] == "workload models ShareGPT, Mix, EP 32, 64"
    assert x1["dispersion"].startswith("98.0 to 104.0 over 2 cells")
    assert x1["bound"] is None and "bound's 1.150" in x1["reading"]  # a PAR bound is no score: read in words
    # DS-EPLB's PARs next to moelab's, whole trace and from DS-EPLB's first call; the gap closed at the smallest EP
    assert "mean PAR 1.250 against DS-EPLB's 1.275 (from DS-EPLB's first call on: 1.200 against 1.240)" in x1["reading"]
    assert "+0.20 (mean), +0.50 at EP32" in x1["reading"]
    assert out.height == 2 and out.filter(pl.col("result").str.contains("rates x0")).height == 1
    # (a) the competition's score, first; (c) against the strongest DS-EPLB, with which one it was
    three = summary_page.build({"dynamic_grid": grid.with_columns(
        competition_score=pl.Series([103.0, 97.0, 100.0, 100.0, 99.0]),
        score_vs_strongest=pl.Series([99.0, 96.0, 100.0, 100.0, 100.5]),
        strongest_eplb=pl.Series(["DS-EPLB@256", "DS-EPLB early", "DS-EPLB@256", "DS-EPLB early", "DS-EPLB"]))}, CMD)
    assert three.height == 6
    fitted = three.filter(pl.col("result").str.contains("fitted rates"))["result"].to_list()
    assert [r[:3] for r in fitted] == ["(a)", "(b)", "(c)"]
    a = three.filter(pl.col("result") == fitted[0]).row(0, named=True)
    assert a["value"] == pytest.approx(100.0) and a["dispersion"].startswith("97.0 to 103.0 over 2 cells")
    c = three.filter(pl.col("result") == fitted[2]).row(0, named=True)
    assert c["value"] == pytest.approx(97.5) and c["baseline"] == "strongest DS-EPLB"
    assert c["reading"].endswith("strongest: DS-EPLB early in 1, DS-EPLB@256 in 1")


def test_bad_calls_name_what_is_wrong():
    with pytest.raises(ValueError, match="no summary reading for tables"):
        summary_page.build({"kernels": coact()}, CMD)
    with pytest.raises(ValueError, match="no {target}"):
        summary_page.build({"coactivation": coact()}, "snakemake --cores all")


def test_a_stage_that_did_not_run_has_no_rows():
    out = summary_page.build({}, CMD)
    assert out.height == 0 and out.columns == [*summary_page.COLUMNS, "regenerate"]


def test_the_cache_headline_skips_capacities_where_every_policy_ties():
    """At capacity = top-k every expert a token needs fits: every policy and Belady miss alike. The headline is
    read at the smallest capacity where they differ."""
    rows = [{"layer": 0, "capacity": 8, "policy": p, "miss_rate": 0.2, "trace": "cap", "source_kind": "captured"}
            for p in ("lru", "lfu", "belady")]
    rows += [{"layer": 0, "capacity": 16, "policy": p, "miss_rate": m, "trace": "cap", "source_kind": "captured"}
             for p, m in (("lru", 0.1), ("lfu", 0.08), ("belady", 0.05))]
    r = summary_page.build({"cache": pl.DataFrame(rows)}, CMD).row(0, named=True)
    assert "capacity 16, the smallest where policies differ" in r["result"] and r["value"] == pytest.approx(0.08)


def static_row(load_cv):
    return {"trace": "cap", "source_kind": "captured", "devices": 4, "matched_policy": "coactivation_balanced",
            "vs_frequency": -0.1, "devices_per_token": 1.8, "frequency_dpt": 2.0, "load_cv": load_cv,
            "frequency_cv": 0.12, "select_frequency_cv": 0.1, "tolerance_vs_frequency_cv": 0.2, "control": None,
            "control_vs_frequency": None}


def test_static_placement_is_called_matched_only_within_the_tolerance_on_held_out_data():
    within, beyond = (summary_page.build({"static_matched": pl.DataFrame([static_row(cv)])}, CMD).row(0, named=True)
                      for cv in (0.13, 0.24))  # tolerance 0.2 x 0.1 = 0.02 over frequency-balanced's 0.12
    assert "matched on held-out data (load CV within 0.02" in within["reading"]
    assert "not matched on held-out data: its load CV is 2.00x frequency-balanced's" in beyond["reading"]


def test_the_page_opens_with_a_panel_per_stage():
    frame = summary_page.build({"coactivation": coact(), "static_matched": pl.DataFrame([static_row(0.13)])}, CMD)
    page = summary_page.panels_html(frame)
    assert page.count("class='panel'") == 2
    assert page.index("Co-activation against the null") < page.index("Static placement")  # PANELS' order
    assert "results/tables/coactivation.html" in page
