"""The workload model family, the published-cells file, the fit through the competition's loop and its
predictions table."""

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from moelab.placement import competition
from moelab.placement import simulator as sim
from moelab.placement import workload_fit as wf
from moelab.placement.hotness_model import Draws, HotnessModel, generate
from moelab.placement.published import PublishedFileError, cells_of, read_cells
from moelab.spec import ConfigError

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT / "config/published/competition_sweep.csv"
SMALL = HotnessModel(layers=3, experts=32, top_k=4, iterations=200, skew=0.8, tokens=500, drift=0.01)


def test_model_is_seeded_and_its_parameters_act_as_named():
    h = SMALL.generate(1)
    assert h.shape == (200, 3, 32) and h.dtype == np.float32 and (h >= 0).all()
    assert np.array_equal(h, SMALL.generate(1)) and not np.array_equal(h, SMALL.generate(2))
    # the expected total is top_k x tokens per iteration; the noise averages out over iterations
    assert h.sum(2).mean() == pytest.approx(4 * 500, rel=0.01)
    # no drift: popularity is frozen, so the time-average of early and late halves agree closely
    frozen = SMALL.scaled(0).generate(1)
    early, late = frozen[:100].mean(0), frozen[100:].mean(0)
    moving = SMALL.scaled(10).generate(1)
    assert np.abs(early - late).mean() < np.abs(moving[:100].mean(0) - moving[100:].mean(0)).mean()
    # more skew: a more unequal expert share
    flat, steep = (HotnessModel(3, 32, 4, 200, s, 500, 0.01).generate(1).mean(0) for s in (0.2, 1.5))
    assert (flat.std(1) / flat.mean(1)).mean() < (steep.std(1) / steep.mean(1)).mean()
    with pytest.raises(ValueError, match="tokens > 0"):
        HotnessModel(3, 32, 4, 200, 0.5, 0, 0.01)
    with pytest.raises(ValueError, match="burst_time > 0"):
        HotnessModel(3, 32, 4, 200, 0.5, 10, burst=0.1, burst_time=0)


def _expected(model: HotnessModel, seed: int = 1) -> np.ndarray:
    return model.generate_with_expected(seed)[1]


def _share(e: np.ndarray) -> np.ndarray:
    return e / e.sum(2, keepdims=True)


def test_bursts_decorrelate_within_their_time_and_mixes_switch_every_layer_at_once():
    base = HotnessModel(2, 32, 4, 2000, 0.3, 1000)
    # bursts: popularity 1 iteration apart is much closer than 1,000 apart with a 100-iteration burst time
    e = _share(_expected(HotnessModel(**{**base.fields(), "burst": 0.5, "burst_time": 100.0})))
    near, far = np.abs(e[1:] - e[:-1]).mean(), np.abs(e[1000:] - e[:-1000]).mean()
    assert near < 0.2 * far
    # frozen (x0): bursts stay where they start
    frozen = _share(_expected(HotnessModel(**{**base.fields(), "burst": 0.5, "burst_time": 100.0}).scaled(0)))
    assert np.allclose(frozen[0], frozen[-1], atol=1e-6)
    # mixes: popularity is piecewise constant between switches, the same iterations in every layer
    m = HotnessModel(**{**base.fields(), "phase": 1.0, "dwell": 200.0, "mixes": 3})
    s = _share(_expected(m))
    change = np.abs(np.diff(s, axis=0)).max(2) > 1e-6  # [iterations - 1, layers]
    assert change.any() and (change[:, 0] == change[:, 1]).all()
    path = Draws(1, 2000, 2, 32, 3).path(200.0)
    assert np.array_equal(np.flatnonzero(np.diff(path)), np.flatnonzero(change[:, 0]))
    assert 4 <= (np.diff(path) != 0).sum() <= 20 and set(path) == {0, 1, 2}  # about 2000 / 200 switches
    # without a phase there is no path to draw: the model is the two-part one
    assert np.array_equal(generate(base, Draws(1, 2000, 2, 32)), base.generate(1))


def test_common_draws_make_the_model_smooth_in_its_parameters():
    draws = Draws(3, 50, 2, 16, 2)
    kw = dict(burst=0.3, burst_time=20.0, phase=0.4, dwell=10.0, mixes=2)
    a = generate(HotnessModel(2, 16, 2, 50, 0.5, 300, 0.01, **kw), draws)
    b = generate(HotnessModel(2, 16, 2, 50, 0.5 + 1e-6, 300, 0.01, **kw), draws)
    assert np.abs(a - b).max() < 1e-2


def test_the_published_file_reads_every_cell_and_keeps_back_the_blank_ones():
    cells = read_cells(PUBLISHED)
    sharegpt = cells_of(cells, "DS-R1", "ShareGPT")
    assert len(sharegpt) == 24 and not any(c.kept_back for c in sharegpt.values())
    assert sharegpt[(32, 1024)].mean_par == 1.257024 and sharegpt[(32, 1024)].transmit == 82350
    mix = cells_of(cells, "DS-R1", "Mix")
    assert [k for k, c in mix.items() if not c.kept_back] == [(32, None), (32, 256), (32, 512), (32, 1024),
                                                              (32, 2048), (32, 4096)]
    assert all(c.kept_back for k, c in mix.items() if k[0] != 32) and len(mix) == 24
    qwen = cells_of(cells, "Qwen3", "LmSys")
    assert {k: c.kept_back for k, c in qwen.items()} == {(32, 1024): False, (64, 1024): True, (128, 1024): True}


@pytest.mark.parametrize("line,message", [
    ("DS-R1,ShareGPT,48,Default,,1.6,0", "ep '48': expected a device count that splits DS-R1's 256 experts"),
    ("DS-R1,ShareGPT,32,EPLB,256,1.2,100", "policy 'EPLB': expected Default or DS-EPLB"),
    ("DS-R1,ShareGPT,32,DS-EPLB,,1.2,100", "interval '': expected DS-EPLB's collection interval"),
    ("DS-R1,ShareGPT,32,Default,,1.6,", "expected both mean_par and transmit, or neither"),
    ("DS-R1,ShareGPT,32,DS-EPLB,256,0.9,100", "expected mean_par >= 1"),
    ("DS-R1,ShareGPT,32,DS-EPLB,256,one,100", "mean_par and transmit must be numbers"),
    ("GPT-4,ShareGPT,32,Default,,1.6,0", "model 'GPT-4'"),
    ("DS-R1,ShareGPT,32,Default,,1.6", "expected 7 fields"),
    ("DS-R1,ShareGPT,32,Default,,1.7,0", "the same cell as line 2"),
])
def test_a_malformed_published_file_is_named_with_its_line(tmp_path, line, message):
    f = tmp_path / "cells.csv"
    f.write_text("model,dataset,ep,policy,interval,mean_par,transmit\nDS-R1,ShareGPT,32,Default,,1.6,0\n"
                 f"{line}\n")
    with pytest.raises(PublishedFileError, match="line 3") as err:
        read_cells(f)
    assert message in str(err.value) and str(f) in str(err.value)
    with pytest.raises(PublishedFileError, match="line 1: expected the header"):
        f.write_text("dataset,ep\n")
        read_cells(f)
    with pytest.raises(PublishedFileError, match="not found"):
        read_cells(tmp_path / "none.csv")


def _block(**kw) -> dict:
    block = {"published": str(PUBLISHED), "shared": "ShareGPT", "shared_params": ["tokens", "burst_time"],
             "models": {"ShareGPT": {"model": "DS-R1", "dataset": "ShareGPT", "fit": ["skew", "burst"],
                                     "start": {"skew": 0.57, "tokens": 7e4, "burst": 0.21, "burst_time": 217.0}},
                        "Mix": {"model": "DS-R1", "dataset": "Mix", "fit": ["skew", "phase"],
                                "start": {"phase": 0.5, "dwell": 300.0, "mixes": 2}},
                        "Qwen3-LmSys": {"model": "Qwen3", "dataset": "LmSys", "base": "Mix", "fit": ["skew"]}},
             "eplb_seconds": {32: 0.24, 64: 0.30, 128: 0.52, 256: 1.10}, "fit_seed": 1, "fit_layers": 1,
             "max_evaluations": 3, "seeds": [1, 2], "layers": 1, "iterations": 300}
    return {**block, **kw}


def test_the_workloads_spec_refuses_what_cannot_be_fitted():
    spec = wf.WorkloadsSpec.from_config(_block())
    assert spec.order() == ["ShareGPT", "Mix", "Qwen3-LmSys"] and spec.base_of("Qwen3-LmSys") == "Mix"
    assert set(spec.check_published()) == {"ShareGPT", "Mix", "Qwen3-LmSys"}
    models = _block()["models"]
    with pytest.raises(ConfigError, match=r"models.Alpaca: .* has no published cell to fit for DS-R1 on 'Alpaca'"):
        wf.WorkloadsSpec.from_config(_block(models={**models, "Alpaca": {"model": "DS-R1", "dataset": "Alpaca",
                                                                         "fit": ["skew"]}})).check_published()
    with pytest.raises(ConfigError, match=r"models.Mix.fit: \['tokens'\] describe the serving system"):
        wf.WorkloadsSpec.from_config(_block(models={**models, "Mix": {**models["Mix"], "fit": ["tokens"]}}))
    with pytest.raises(ConfigError, match="fit=\\['magic'\\]"):
        wf.WorkloadsSpec.from_config(_block(models={**models, "Mix": {**models["Mix"], "fit": ["magic"]}}))
    with pytest.raises(ConfigError, match="eplb_seconds: no seconds for EP64"):
        wf.WorkloadsSpec.from_config(_block(eplb_seconds={32: 0.24}))
    with pytest.raises(ConfigError, match=r"published: .*nope.csv: published-cells file not found"):
        wf.WorkloadsSpec.from_config(_block(published="nope.csv")).check_published()
    with pytest.raises(ConfigError, match="bases form a cycle"):
        wf.WorkloadsSpec.from_config(_block(models={**models, "Mix": {**models["Mix"], "base": "Qwen3-LmSys"}})).order()
    # a fitted parameter on a log scale cannot start at 0 (Mix keeps ShareGPT's, which has no phase)
    spec = wf.WorkloadsSpec.from_config(_block(models={**models, "Mix": {**models["Mix"], "start": {}}}))
    with pytest.raises(ConfigError, match=r"models.Mix.start: \['phase'\] are fitted"):
        wf.starting_model(spec, "Mix", HotnessModel(58, 256, 8, 300, 0.5, 1000))


def test_a_redeployment_of_fewer_layers_takes_as_long_as_the_full_model():
    assert sim.paced([0, 1], 2, 5, idle=-1) == [0, -1, 1, -1, -1]  # 2 listed layers take floor(2 * 5 / 2) = 5
    assert sim.paced([3, 1], 4, None) == [3, 1] and sim.paced([3, 1], 4, 4) == [3, 1]
    with pytest.raises(ValueError, match="full_layers=2"):
        sim.paced([0], 4, 2)
    hot = SMALL.generate(1).astype(np.float64)

    def pol(w: np.ndarray) -> tuple:
        return competition.ds_eplb(w, 4, 4)
    plain = competition.simulate(hot, pol, 20, devices=4, delay=lambda c, s: 1)
    paced = competition.simulate(hot, pol, 20, devices=4, delay=lambda c, s: 1, full_layers=30)
    # calls at 21, then one interval after each redeployment ends: 3 layer steps, or 30 as on the full model
    assert plain["calls"] == len(range(21, 201, 3 + 1 + 20)) == 8
    assert paced["calls"] == len(range(21, 201, 30 + 1 + 20)) == 4
    assert paced["transmit"] <= plain["transmit"]


def test_the_fit_is_deterministic_reads_only_given_cells_and_predicts_the_kept_back_ones():
    spec = wf.WorkloadsSpec.from_config(_block())
    cells = spec.check_published()
    shared, record = wf.fit(spec, "ShareGPT", cells["ShareGPT"], None)
    again, _ = wf.fit(spec, "ShareGPT", cells["ShareGPT"], None)
    assert shared == again and record["evaluations"] <= 3 + 2 and record["fitted"] == ["skew", "burst"]
    assert record["objective"] <= record["objective_start"] and record["residuals"] == 24 + 20
    assert (shared.iterations, shared.layers, shared.tokens) == (300, 58, 7e4)  # tokens: a start, not fitted here
    mix, rec = wf.fit(spec, "Mix", cells["Mix"], shared)
    assert rec["residuals"] == 6 + 5 and rec["kept_from"] == "ShareGPT"  # EP32's cells only
    assert (mix.tokens, mix.burst_time, mix.burst, mix.mixes) == (shared.tokens, shared.burst_time, shared.burst, 2)
    qwen, rec = wf.fit(spec, "Qwen3-LmSys", cells["Qwen3-LmSys"], mix)
    assert (qwen.layers, qwen.experts, qwen.iterations, qwen.phase) == (94, 128, 300, mix.phase)
    assert rec["residuals"] == 2
    # the residuals read the published values of the given cells, never a kept-back one
    runs = {k: {"mean_par": c.mean_par or 5.0, "transmit": c.transmit or 0.0} for k, c in cells["Mix"].items()}
    assert not wf.residuals(runs, cells["Mix"]).any()
    t = wf.predictions("Mix", mix, cells["Mix"], spec)
    assert t.height == 24 and t.equals(wf.predictions("Mix", mix, cells["Mix"], spec))
    assert t.filter(role="fit").height == 6 and t.filter(role="predicted").height == 18
    assert t.filter(role="predicted")["published_par"].null_count() == 18
    fit = t.filter(role="fit", policy="DS-EPLB@256").row(0, named=True)
    assert fit["published_par"] == 1.343219 and fit["par_error"] == pytest.approx(fit["modelled_par"] / 1.343219 - 1)
    assert (t["layers_run"] == 1).all() and (t["layers"] == 58).all() and (t["seeds"] == 2).all()
    # transmit is the run layer's, scaled to 58; mean and spread are over the seeds, each rerun here
    hot = {s: HotnessModel(**{**mix.fields(), "layers": 1}).generate(s) for s in (1, 2)}
    by_seed = [wf.run_cells(hot[s], [(64, 512)], spec, 58)[(64, 512)] for s in (1, 2)]
    row = t.filter(ep=64, policy="DS-EPLB@512").row(0, named=True)
    assert row["modelled_transmit"] == pytest.approx(np.mean([r["transmit"] for r in by_seed]))
    assert row["modelled_par_std"] == pytest.approx(np.std([r["mean_par"] for r in by_seed], ddof=1))
    assert by_seed[0]["transmit"] % 58 == 0
    q = wf.predictions("Qwen3-LmSys", qwen, cells["Qwen3-LmSys"], spec)
    assert set(q["ep"]) == {32, 64, 128} and q.filter(role="not given").height == 18 - 3
    assert q.filter(role="predicted")["policy"].to_list() == ["DS-EPLB@1024", "DS-EPLB@1024"]
    errors = wf.error_summary(pl.concat([t, q]))
    assert set(errors["role"]) == {"fit"} and errors.filter(workload="Mix")["cells"][0] == 6
