"""The pipeline's placements in the engines' files: every placement reads back to what was computed."""

import json

import numpy as np
import polars as pl
import pytest
import yaml

from moelab import exports
from moelab.exports import placements
from moelab.placement import dynamic_eval, static
from moelab.placement.policy_specs import DynamicPolicies

DYNAMIC = {"devices": 4, "redundant_slots": 1, "policy_seconds": 0.0, "nodes": 1, "expert_groups": 1, "oracle": False}
POLICIES = DynamicPolicies.from_config({
    "eplb": {"call_interval": 16, "window": 16},
    "policy": {"call_interval": 16, "window": 16, "halflife": 8, "accept": "target", "min_gain": 0.01,
               "horizon_calls": 1, "max_moves": 4, "recount_steps": 0},
    "score": {"zero_to_one": True, "par_weight": 60.0, "slot_bytes": 1.0, "bandwidth": 1e9}})


def test_static_placements_read_back_from_every_engine_file(tmp_path):
    rng = np.random.default_rng(0)
    E, L = 16, 3
    rows = []
    for D in (2, 4):
        for policy in ("random", "frequency"):
            for layer in range(L):
                ex = rng.integers(0, E, size=(200, 2))
                dev = static.place(policy, ex, E, D, rng)
                rows.append({"layer": layer, "devices": D, "policy": policy, "cv_budget": None,
                             "device": dev.tolist(), "num_experts": E})
    frame = pl.DataFrame(rows, schema_overrides={"cv_budget": pl.Float64})
    manifest = placements.static_files(frame, tmp_path)
    assert manifest.height == 4 and set(manifest["redeployments"]) == {0}
    for r in manifest.iter_rows(named=True):
        want = np.array(frame.filter((pl.col("devices") == r["devices"]) & (pl.col("policy") == r["policy"]))
                        .sort("layer")["device"].to_list())
        stem = f"D{r['devices']}-{r['policy']}"
        p2l = exports.read_sglang(tmp_path / f"{stem}.sglang.json")
        # slot p of GPU p // (E / D) holds an expert placed on that device, every expert exactly once
        gpu = np.arange(E) // (E // r["devices"])
        assert np.array_equal(want[np.arange(L)[:, None], p2l], np.broadcast_to(gpu, (L, E)))
        assert np.array_equal(np.sort(p2l, 1), np.broadcast_to(np.arange(E), (L, E)))
        assert np.array_equal(exports.read_trtllm(tmp_path / f"{stem}.trtllm.yaml")[0], p2l)
        assert np.array_equal(exports.read_vllm(tmp_path / f"{stem}.vllm.pt"), p2l)


def test_dynamic_runs_export_their_final_table_and_every_redeployment(tmp_path):
    rng = np.random.default_rng(1)
    hot = rng.integers(0, 50, (80, 3, 8)).astype(float)
    runs = dynamic_eval.run_policies(hot, dynamic_eval.DynamicSpec.from_config(DYNAMIC), POLICIES, record=True)
    frame = dynamic_eval.redeployments(runs).with_columns(num_experts=pl.lit(8), trace=pl.lit("t"))
    assert set(frame["policy"]) == {"DS-EPLB", "moelab"}  # Default never redeploys
    manifest = placements.dynamic_files(frame, tmp_path)
    for r in manifest.iter_rows(named=True):
        run, stem = runs[r["policy"]], placements.slug(r["policy"])
        final = exports.physical_to_logical(run["tables"])  # the simulator's last deployment, all slots full
        assert r["filled_slots_final"] == 0
        for read in (exports.read_sglang, exports.read_vllm):
            assert np.array_equal(read(tmp_path / f"{stem}.{'sglang.json' if read is exports.read_sglang else 'vllm.pt'}"),
                                  final)
        initial, changes = exports.read_redeployments(tmp_path / f"{stem}.redeployments.jsonl")
        assert [(i, layer) for i, layer, _ in changes] == [(i, layer) for i, layer, _ in run["changes"]]
        assert r["redeployments"] == len(run["changes"]) > 0
        assert np.array_equal(exports.replay(initial, changes, len(hot)), final)


def test_redeployments_name_the_decoder_layers_the_engine_files_use(tmp_path):
    """A model with dense layers: MoE rows 0, 1, 2 are decoder layers 3, 5, 6. Every change line says its
    decoder layer, the same index the SGLang and TensorRT-LLM files beside it use."""
    rng = np.random.default_rng(2)
    hot = rng.integers(0, 50, (80, 3, 8)).astype(float)
    runs = dynamic_eval.run_policies(hot, dynamic_eval.DynamicSpec.from_config(DYNAMIC), POLICIES, record=True)
    decoder = [3, 5, 6]
    frame = dynamic_eval.redeployments(runs).with_columns(
        num_experts=pl.lit(8), trace=pl.lit("t"),
        decoder_layer=pl.col("layer").replace_strict([0, 1, 2], decoder))
    placements.dynamic_files(frame, tmp_path)
    lines = [json.loads(x) for x in (tmp_path / "moelab.redeployments.jsonl").read_text().splitlines()]
    assert lines[0]["decoder_layers"] == decoder and lines[0]["version"] == 2
    assert len(lines) > 1 and all(c["decoder_layer"] == decoder[c["layer"]] for c in lines[1:])
    trt = yaml.safe_load((tmp_path / "moelab.trtllm.yaml").read_text())
    assert sorted(trt["initial_global_assignments"]) == decoder
    _, _, layers = exports.read_redeployments(tmp_path / "moelab.redeployments.jsonl", with_layers=True)
    assert layers == decoder
    bad = dict(lines[1], decoder_layer=4)
    (tmp_path / "bad.jsonl").write_text("\n".join(json.dumps(x) for x in [lines[0], bad]) + "\n")
    with pytest.raises(exports.ExportError, match=r"bad\.jsonl, line 2: field decoder_layer 4 is not "
                                                  r"decoder_layers\[\d\] = \d"):
        exports.read_redeployments(tmp_path / "bad.jsonl")


def test_empty_slots_get_the_engines_trivial_filling_and_are_counted():
    slots = np.array([[0, 1, -1, 2, 3, -1]])
    out, n = placements.complete(slots, 4)
    assert n == 2 and out.tolist() == [[0, 1, 2, 2, 3, 1]]  # physical slot p holds p mod E


def test_a_placement_that_breaks_an_engine_constraint_is_refused(tmp_path):
    frame = pl.DataFrame({"layer": [0], "devices": [4], "policy": ["frequency"], "cv_budget": [None],
                          "device": [[0, 0, 1, 1, 2, 2, 3, 0]], "num_experts": [8]},  # device 0 holds 3 experts
                         schema_overrides={"cv_budget": pl.Float64})
    with pytest.raises(exports.ExportError):
        placements.static_files(frame, tmp_path)


def test_exports_index_layers_as_the_engines_do(tmp_path):
    """A model whose decoder layer 0 is dense (DeepSeek's first_k_dense): its MoE rows are layers 1 and 2 in
    SGLang's map (row 0 holds the trivial map) and TensorRT-LLM's keys; vLLM's map has the MoE rows only."""
    rows = [{"layer": layer, "decoder_layer": layer + 1, "devices": 2, "policy": "frequency", "cv_budget": None,
             "device": [0, 1, 0, 1, 1, 0, 1, 0], "num_experts": 8} for layer in range(2)]
    frame = pl.DataFrame(rows, schema_overrides={"cv_budget": pl.Float64})
    placements.static_files(frame, tmp_path)
    sg = json.loads((tmp_path / "D2-frequency.sglang.json").read_text())["physical_to_logical_map"]
    assert len(sg) == 3 and sg[0] == list(range(8)) and sg[1] == sg[2] == [0, 2, 5, 7, 1, 3, 4, 6]
    trt = yaml.safe_load((tmp_path / "D2-frequency.trtllm.yaml").read_text())
    assert sorted(trt["initial_global_assignments"]) == [1, 2]
    assert exports.read_vllm(tmp_path / "D2-frequency.vllm.pt").shape == (2, 8)
