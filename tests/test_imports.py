"""Importing users' serving-engine dumps: every format is written here for real (torch.save, safetensors,
parquet, npy, JSON), from a planted load or routing, and must come back exactly."""

import base64
import gc
import json
import subprocess
import sys
import weakref

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from safetensors.numpy import save_file

from moelab import traces
from moelab.imports import FORMATS, ImportFileError, ImportSpec, read_hotness, read_trace
from moelab.spec import ConfigError


def spec(**entry):
    return ImportSpec.from_config({"name": "u", **entry}, where="imports[0]")


def p2l_map(rng, L, E, replicas):
    """[L, E + replicas]: every logical expert once, plus ``replicas`` extra copies, in a shuffled order."""
    return np.stack([rng.permutation(np.concatenate([np.arange(E), rng.choice(E, replicas, replace=False)]))
                     for _ in range(L)])


def split_counts(hot, p2l, parts, rng):
    """[parts, I, L, P] physical counts whose sum over parts and replicas is exactly ``hot`` [I, L, E]."""
    I, L, E = hot.shape
    out = np.zeros((parts, I, L, p2l.shape[1]), np.int64)
    for i in range(I):
        for ly in range(L):
            for e in range(E):
                slots = np.flatnonzero(p2l[ly] == e)
                pick = rng.integers(0, parts * slots.size, size=hot[i, ly, e])
                c = np.bincount(pick, minlength=parts * slots.size).reshape(parts, slots.size)
                out[:, i, ly, slots] += c
    return out


def sglang_file(folder, rank, records, p2l, time="1712345678.25"):
    path = folder / f"expert_distribution_recorder_{time}_{rank}.pt"
    torch.save({"records": records, "last_physical_to_logical_map": torch.as_tensor(p2l)}, path)
    return path


def planted_routing(rng, T, L, E, k):
    """[T, L, k] distinct logical experts per (token, layer)."""
    return np.argsort(rng.random((T, L, E)), axis=-1)[..., :k]


def round_trip(tmp_path, meta, table):
    traces.write_trace(tmp_path / "imported.parquet", meta, table)
    return traces.read_trace(tmp_path / "imported.parquet", expect={"source_kind": "imported"})


# --- hotness formats ----------------------------------------------------------------------------------------

def test_competition_npy_round_trip_and_header_check(tmp_path, rng):
    hot = rng.integers(1, 50, size=(5, 3, 8))
    np.save(tmp_path / "ShareGPT.npy", hot)
    s = spec(format="competition-npy", path=str(tmp_path / "ShareGPT.npy"), experts=8)
    assert s.kind == "hotness" and s.files() == [str(tmp_path / "ShareGPT.npy")]
    s.check_files()
    np.testing.assert_array_equal(read_hotness(s), hot)
    np.save(tmp_path / "flat.npy", hot[0])
    with pytest.raises(ImportFileError, match=r"flat\.npy: expected a numeric \[iterations, layers, experts\]"):
        spec(format="competition-npy", path=str(tmp_path / "flat.npy")).check_files()
    with pytest.raises(ImportFileError, match="has 8 experts, the config says experts=16"):
        spec(format="competition-npy", path=str(tmp_path / "ShareGPT.npy"), experts=16).check_files()


def test_sglang_stat_round_trip_drops_dense_layers(tmp_path, rng):
    hot = rng.integers(0, 40, size=(6, 4, 8)).astype(np.int32)
    hot[:, 0] = 0  # a dense decoder layer: SGLang indexes it, nothing routes there
    path = tmp_path / "expert_distribution_recorder_1712345678.5.pt"
    torch.save({"rank": 0, "logical_count": torch.from_numpy(hot), "average_utilization_rate_over_window": None},
               path)
    s = spec(format="sglang-stat", path=str(path), moe_layers=[1, 2, 3], ring_start=0)
    s.check_files()
    np.testing.assert_array_equal(read_hotness(s), hot[:, 1:])
    bad = hot.astype(np.float32)
    bad[2, 1, 5] = np.nan
    torch.save({"rank": 0, "logical_count": torch.from_numpy(bad)}, tmp_path / "nan.pt")
    with pytest.raises(ImportFileError, match=r"nan\.pt: logical_count: holds NaN .*\[2, 1, 5\]"):
        read_hotness(spec(format="sglang-stat", path=str(tmp_path / "nan.pt"), ring_start=0))


def test_sglang_per_pass_sums_ranks_and_replicas_exactly(tmp_path, rng):
    I, L, E, ep = 4, 3, 8, 2
    hot = rng.integers(0, 30, size=(I, L, E))
    p2l = p2l_map(rng, L, E, replicas=2)  # 10 physical slots, 5 per rank
    per_rank = split_counts(hot, p2l, ep, rng)
    passes = [17, 3, 9, 11]  # forward_pass_id: the hotness comes out in id order
    for r in range(ep):
        recs = [{"forward_pass_id": fp, "rank": r, "gatherer_key": "primary",
                 "global_physical_count": torch.from_numpy(per_rank[r, i].astype(np.int32))}
                for i, fp in enumerate(passes)]
        sglang_file(tmp_path, r, recs, p2l)
    (tmp_path / "notes.txt").write_text("not a dump")
    torch.save({"rank": 0, "logical_count": torch.zeros(1, L, E)}, tmp_path / "expert_distribution_recorder_1.0.pt")
    np.save(tmp_path / "map.npy", p2l)
    s = spec(format="sglang-per-pass", path=str(tmp_path), ep_size=ep, experts=E)
    assert s.files() == [str(tmp_path / f"expert_distribution_recorder_1712345678.25_{r}.pt") for r in range(ep)]
    s.check_files()
    np.testing.assert_array_equal(read_hotness(s), hot[np.argsort(passes)])
    # the map given in the config replaces the dump's and is an input of the rule
    s2 = spec(format="sglang-per-pass", path=str(tmp_path), physical_to_logical=str(tmp_path / "map.npy"))
    assert s2.files()[-1] == str(tmp_path / "map.npy") and len(s2.files()) == 3
    np.testing.assert_array_equal(read_hotness(s2), hot[np.argsort(passes)])


def test_sglang_per_pass_rank_errors(tmp_path, rng):
    p2l = p2l_map(rng, 2, 4, 2)
    rec = lambda r, fp=0: {"forward_pass_id": fp, "rank": r, "gatherer_key": "primary",  # noqa: E731
                           "global_physical_count": torch.ones(2, 6, dtype=torch.int32)}
    sglang_file(tmp_path, 0, [rec(0)], p2l)
    sglang_file(tmp_path, 1, [rec(0)], p2l)  # rank 1's file holds a record of rank 0
    with pytest.raises(ImportFileError, match=r"_1\.pt: records\[0\]\.rank: is 0, expected 1"):
        read_hotness(spec(format="sglang-per-pass", path=str(tmp_path)))
    sglang_file(tmp_path, 1, [rec(1)], p2l)
    with pytest.raises(ImportFileError, match=r"_2\.pt: missing rank file for rank 2 \(ep_size=3\)"):
        spec(format="sglang-per-pass", path=str(tmp_path), ep_size=3).files()
    with pytest.raises(ImportFileError, match="missing rank file for rank 2"):
        spec(format="sglang-per-pass", path=str(tmp_path), ep_size=3).check_files()
    sglang_file(tmp_path, 1, [rec(1, fp=5)], p2l)
    with pytest.raises(ImportFileError, match="rank 0 has no record of forward_pass_id 5"):
        read_hotness(spec(format="sglang-per-pass", path=str(tmp_path)))
    other = p2l.copy()
    other[0, [0, 1]] = other[0, [1, 0]]
    sglang_file(tmp_path, 1, [rec(1)], other)
    with pytest.raises(ImportFileError, match="last_physical_to_logical_map: differs from the map in"):
        read_hotness(spec(format="sglang-per-pass", path=str(tmp_path)))


def trtllm_folder(folder, hot, iters, layers, ranks, rng, k=2):
    folder.mkdir()
    (folder / "meta_info.json").write_text(json.dumps({"num_experts": hot.shape[2], "num_experts_per_token": k}))
    parts = split_counts(hot, np.tile(np.arange(hot.shape[2]), (hot.shape[1], 1)), ranks, rng)
    for r in range(ranks):
        save_file({f"{it}_{layer}": parts[r, i, j] for i, it in enumerate(iters) for j, layer in enumerate(layers)},
                  str(folder / f"rank{r}.safetensors"))
    return folder


def test_trtllm_round_trip_sorts_iterations_numerically(tmp_path, rng):
    hot = rng.integers(0, 25, size=(3, 2, 6))
    iters, layers = [5, 10, 100], [3, 7]  # as strings "10" < "100" < "5": the order must be numeric
    folder = trtllm_folder(tmp_path / "expert_statistic", hot, iters, layers, 3, rng)
    s = spec(format="trtllm-expert-statistic", path=str(folder), ep_size=3, experts=6, top_k=2)
    assert s.files() == [str(folder / n) for n in ("meta_info.json", "rank0.safetensors", "rank1.safetensors",
                                                   "rank2.safetensors")]
    s.check_files()
    np.testing.assert_array_equal(read_hotness(s), hot)
    with pytest.raises(ImportFileError, match="num_experts_per_token: is 2, the config says top_k=8"):
        read_hotness(spec(format="trtllm-expert-statistic", path=str(folder), top_k=8))


def test_trtllm_errors(tmp_path, rng):
    hot = rng.integers(0, 9, size=(2, 2, 4))
    folder = trtllm_folder(tmp_path / "es", hot, [0, 1], [0, 1], 2, rng)
    s = spec(format="trtllm-expert-statistic", path=str(folder))
    d = {f"{i}_{j}": np.ones(4, np.int64) for i in (0, 1) for j in (0, 1)}
    d["1_1"] = np.array([1, -2, 0, 0])
    save_file(d, str(folder / "rank1.safetensors"))
    with pytest.raises(ImportFileError, match=r"rank1\.safetensors: '1_1': holds negative values"):
        read_hotness(s)
    del d["1_1"]
    save_file(d, str(folder / "rank1.safetensors"))
    with pytest.raises(ImportFileError, match=r"rank1\.safetensors: '1_1': missing"):
        s.check_files()
    with pytest.raises(ImportFileError, match=r"rank1\.safetensors: '1_1': missing"):
        read_hotness(s)
    (folder / "rank1.safetensors").rename(folder / "rank2.safetensors")  # rank 1 lost, rank 2 present
    with pytest.raises(ImportFileError, match=r"rank1\.safetensors: missing rank file for rank 1"):
        s.files()
    (folder / "meta_info.json").write_text(json.dumps({"num_experts": 4}))
    (folder / "rank2.safetensors").rename(folder / "rank1.safetensors")
    with pytest.raises(ImportFileError, match=r"meta_info\.json: num_experts_per_token: missing"):
        read_hotness(s)


def test_trtllm_statistic_in_slot_ids_is_mapped_back(tmp_path, rng):
    """With the load balancer on, TensorRT-LLM routes each token to a slot and counts slot ids
    (bincount(minlength=num_slots)), and meta_info.json's num_experts is num_slots."""
    from moelab.exports.trtllm import write_trtllm

    I, E, ep = 3, 6, 2
    layers = [3, 4]  # decoder-layer ids: DeepSeek's first layers are dense and absent
    hot = rng.integers(0, 25, size=(I, len(layers), E))
    slot_map = p2l_map(rng, len(layers), E, replicas=2)  # 8 slots, 4 per rank
    per_rank = split_counts(hot, slot_map, ep, rng)  # [ranks, I, L, slots]: each token's slot, per rank
    folder = tmp_path / "expert_statistic"
    folder.mkdir()
    (folder / "meta_info.json").write_text(json.dumps({"num_experts": slot_map.shape[1], "num_experts_per_token": 2}))
    for r in range(ep):
        save_file({f"{it}_{ly}": per_rank[r, it, j] for it in range(I) for j, ly in enumerate(layers)},
                  str(folder / f"rank{r}.safetensors"))
    yaml_path = tmp_path / "eplb.yaml"
    write_trtllm(yaml_path, slot_map, ep, num_experts=E, layers=layers)  # the config the server ran with
    with pytest.raises(ImportFileError, match=r"meta_info\.json: num_experts: is 8, the config says experts=6; with "
                                              r"the load balancer on, TensorRT-LLM counts slot ids"):
        spec(format="trtllm-expert-statistic", path=str(folder), experts=E).check_files()
    s = spec(format="trtllm-expert-statistic", path=str(folder), experts=E, physical_to_logical=str(yaml_path))
    assert str(yaml_path) in s.files()  # an input of the import: a changed map reruns it
    s.check_files()
    np.testing.assert_array_equal(read_hotness(s), hot)
    np.save(tmp_path / "map.npy", slot_map)  # a map file: rows in the statistic's layer order
    np.testing.assert_array_equal(read_hotness(spec(format="trtllm-expert-statistic", path=str(folder),
                                                    physical_to_logical=str(tmp_path / "map.npy"))), hot)
    write_trtllm(yaml_path, slot_map, ep, num_experts=E, layers=[3, 5])
    with pytest.raises(ImportFileError, match=r"eplb\.yaml: initial_global_assignments: has no layer \[4\]"):
        s.check_files()
    yaml_path.write_text(yaml_path.read_text().replace("layer_updates_per_iter: 0", "layer_updates_per_iter: 2"))
    with pytest.raises(ImportFileError, match=r"layer_updates_per_iter: is 2: the load balancer moved experts"):
        read_hotness(s)


@pytest.mark.parametrize("container", ["pt-dict", "pt-tensor", "safetensors"])
@pytest.mark.parametrize("map_kind", [".json", ".npy", ".pt"])
def test_vllm_window_maps_replicas_exactly(tmp_path, rng, container, map_kind):
    W, L, E = 5, 2, 6
    hot = rng.integers(0, 40, size=(W, L, E))
    p2l = p2l_map(rng, L, E, replicas=2)
    window = split_counts(hot, p2l, 1, rng)[0].astype(np.int32)
    if container == "safetensors":
        path = tmp_path / "eplb.safetensors"
        save_file({"expert_load_window": window}, str(path))
    else:
        path = tmp_path / "eplb.pt"
        t = torch.from_numpy(window)
        torch.save({"expert_load_window": t, "expert_load_pass": t[0]} if container == "pt-dict" else t, path)
    mp = tmp_path / f"map{map_kind}"
    if map_kind == ".json":
        mp.write_text(json.dumps({"physical_to_logical_map": p2l.tolist()}))
    elif map_kind == ".npy":
        np.save(mp, p2l)
    else:
        torch.save(torch.from_numpy(p2l), mp)
    s = spec(format="vllm-expert-load", path=str(path), physical_to_logical=str(mp), experts=E)
    assert s.files() == sorted([str(path), str(mp)])
    s.check_files()
    np.testing.assert_array_equal(read_hotness(s), hot)


def test_maps_that_cannot_work(tmp_path, rng):
    window = torch.ones(2, 2, 6, dtype=torch.int32)
    torch.save(window, tmp_path / "w.pt")
    (tmp_path / "hole.json").write_text(json.dumps([[0, 1, 2, 3, 3, 3], [0, 1, 2, 3, 4, 5]]))
    s = spec(format="vllm-expert-load", path=str(tmp_path / "w.pt"), physical_to_logical=str(tmp_path / "hole.json"))
    with pytest.raises(ImportFileError, match=r"hole\.json: physical_to_logical: layer 0 holds no replica of "
                                              r"logical expert\(s\) \[4, 5\]"):
        read_hotness(s)  # E = 6 from layer 1, layer 0 lacks experts 4 and 5
    (tmp_path / "narrow.json").write_text(json.dumps([[0, 1, 2, 3], [3, 2, 1, 0]]))
    with pytest.raises(ImportFileError, match=r"w\.pt: expert_load_window: .*the map .* has \(2, 4\)"):
        read_hotness(spec(format="vllm-expert-load", path=str(tmp_path / "w.pt"),
                          physical_to_logical=str(tmp_path / "narrow.json")))


def test_import_errors_are_hotness_errors(tmp_path):
    from moelab import hotness
    from moelab.imports.hotness_formats import read_npy

    np.save(tmp_path / "neg.npy", -np.ones((2, 2, 2)))
    with pytest.raises(hotness.HotnessError, match="negative values"):
        read_npy(tmp_path / "neg.npy")
    assert issubclass(ImportFileError, hotness.HotnessError) and issubclass(ImportFileError, ValueError)


# --- the config entry ---------------------------------------------------------------------------------------

def test_spec_refuses_what_cannot_work(tmp_path):
    with pytest.raises(ConfigError, match=r"imports\[0\]\.ep_size: does not apply to format 'competition-npy'"):
        spec(format="competition-npy", path="h.npy", ep_size=4)
    with pytest.raises(ConfigError, match=r"imports\[0\]\.format: unknown format 'sglang-stats'"):
        spec(format="sglang-stats", path="x.pt")
    with pytest.raises(ConfigError, match=r"imports\[0\]\.physical_to_logical: format 'vllm-expert-load' needs it"):
        spec(format="vllm-expert-load", path="w.pt")
    with pytest.raises(ConfigError, match=r"imports\[0\]\.name: 'my-dump' must match"):
        ImportSpec.from_config({"name": "my-dump", "format": "competition-npy", "path": "h.npy"}, "imports[0]")
    with pytest.raises(ConfigError, match=r"imports\[0\]\.concurrency: does not apply"):
        spec(format="sglang-stat", path="s.pt", concurrency=8)
    with pytest.raises(ConfigError, match=r"imports\[0\]\.experts: format 'sglang-routed-experts' needs"):
        spec(format="sglang-routed-experts", path="r.jsonl", top_k=2)
    with pytest.raises(ConfigError, match=r"imports\[0\]\.moe_layers: \[3, 1\] must be strictly increasing"):
        spec(format="sglang-stat", path="s.pt", moe_layers=[3, 1])
    with pytest.raises(ConfigError, match=r"imports\[0\]\.top_k: expected an integer >= 1"):
        spec(format="flame-moe", path="f", top_k=0)
    with pytest.raises(ConfigError, match=r"imports\[0\]: unknown keys \['window'\]"):
        spec(format="flame-moe", path="f", window=3)
    with pytest.raises(ImportFileError, match="no such file"):
        spec(format="competition-npy", path=str(tmp_path / "none.npy")).check_files()
    s = spec(format="flame-moe", path="f")
    assert (s.kind, s.concurrency, s.domain, s.experts, s.source_id) == ("trace", 64, "imported", 64, "imported-u")
    assert {f.kind for f in FORMATS.values()} == {"hotness", "trace"} and len(FORMATS) == 8


# --- trace formats ------------------------------------------------------------------------------------------

def test_sglang_per_token_round_trip(tmp_path, rng):
    Lall, E, k, ep, K = 4, 8, 3, 2, 8  # decoder layer 0 is dense; the recorder keeps 8 columns
    p2l = p2l_map(rng, Lall, E, replicas=4)  # 12 physical slots
    slots = [[np.flatnonzero(p2l[ly] == e) for e in range(E)] for ly in range(Lall)]
    # (forward_pass_id, rank) -> (positions, extend_seq_lens); pass 4 is a decode pass
    plan = {(2, 0): ([0, 1, 2, 10, 11, 12, 13, 14], [3, 5]), (2, 1): ([0, 1, 2, 3, 4, 5], [6]),
            (4, 0): ([3, 15, 7], None), (4, 1): ([6, 2], None), (7, 0): ([0, 1, 2, 3, 4], [5]),
            (7, 1): ([8, 9, 10, 11], [4])}
    planted, rec_by_rank = {}, {0: [], 1: []}
    for (fp, r), (positions, esl) in plan.items():
        T = len(positions)
        logical = planted_routing(rng, T, Lall - 1, E, k)
        ids = np.full((Lall, T, K), -1, np.int32)
        for t in range(T):
            for j in range(Lall - 1):
                for c in range(k):
                    ids[j + 1, t, c] = rng.choice(slots[j + 1][logical[t, j, c]])
        tokens = rng.integers(0, 50000, T)
        planted[fp, r] = (logical, tokens, positions, esl)
        rec_by_rank[r].append({"forward_pass_id": fp, "rank": r, "gatherer_key": "primary",
                               "topk_ids_of_layer": torch.from_numpy(ids), "input_ids": tokens.tolist(),
                               "positions": positions, "extend_seq_lens": esl, "forward_mode": 2 if esl is None else 1,
                               "misc_objects": []})
    for r in range(ep):
        sglang_file(tmp_path, r, rec_by_rank[r][::-1], p2l)  # file order reversed: the trace follows pass ids
    s = spec(format="sglang-per-token", path=str(tmp_path), ep_size=ep, top_k=k, moe_layers=[1, 2, 3],
             concurrency=8, domain="chat")
    s.check_files()
    meta, table = read_trace(s, seed=3)
    tr = round_trip(tmp_path, meta, table)
    # expected stream: (pass, rank) order; a doc per extend sequence, one per decode token
    ex, doc_len, pos, tok, doc = [], [], [], [], []
    for key in sorted(plan):
        logical, tokens, positions, esl = planted[key]
        ex.append(np.sort(logical, -1))
        tok += tokens.tolist()
        pos += positions
        start = 0
        for n in (esl or [1] * len(positions)):
            doc_len += [max(positions[start:start + n]) + 1] * n
            doc += [len(set(doc))] * n
            start += n
    ex, pos, doc_len = np.concatenate(ex), np.asarray(pos), np.asarray(doc_len)
    n = (len(pos) // 8) * 8  # 28 tokens -> 3 iterations; the last 4 tokens dropped
    assert (tr.n_tokens, tr.n_iterations, meta.config["tokens_dropped"]) == (24, 3, 4)
    assert (meta.source_id, meta.num_experts, meta.top_k, meta.layer_index, meta.domains) == \
        ("imported-u", E, k, (1, 2, 3), ("chat",))
    np.testing.assert_array_equal(tr.experts_by_layer(), ex[:n])
    np.testing.assert_allclose(tr.weights(), 1 / k)
    cols = tr.token_columns()
    np.testing.assert_array_equal(cols["pos"], pos[:n])
    np.testing.assert_array_equal(cols["token"], tok[:n])
    np.testing.assert_array_equal(cols["is_test"], 2 * pos[:n] >= doc_len[:n])
    np.testing.assert_array_equal(cols["doc"], doc[:n])
    assert cols["doc"][-1] == 2 + 1 + 3 + 2  # extend sequences and decode tokens before the last sequence


def test_sglang_per_token_errors(tmp_path):
    p2l = np.array([[0, 1, 2, 3, 0, 1], [0, 1, 2, 3, 2, 3]])  # 6 physical slots over 4 experts
    ids = torch.tensor([[[0, 1, -1], [2, 3, -1]], [[4, 5, -1], [0, 1, -1]]], dtype=torch.int32)  # [2, 2 tokens, 3]
    rec = {"forward_pass_id": 0, "rank": 0, "gatherer_key": "primary", "topk_ids_of_layer": ids,
           "input_ids": [5, 6], "positions": [0, 1], "extend_seq_lens": [2], "forward_mode": 1}
    sglang_file(tmp_path, 0, [rec], p2l)
    s = spec(format="sglang-per-token", path=str(tmp_path), concurrency=2)
    tr = round_trip(tmp_path, *read_trace(s, seed=0))
    assert tr.meta.top_k == 2 and tr.n_tokens == 2
    bad = ids.clone()
    bad[1, 0, 1] = 6
    sglang_file(tmp_path, 0, [{**rec, "topk_ids_of_layer": bad}], p2l)
    with pytest.raises(ImportFileError, match=r"records\[0\]\.topk_ids_of_layer: physical id 6 .* outside the "
                                              r"physical-to-logical map's 6 physical experts"):
        read_trace(s, seed=0)
    dense = ids.clone()
    dense[0] = -1
    sglang_file(tmp_path, 0, [{**rec, "topk_ids_of_layer": dense}], p2l)
    with pytest.raises(ImportFileError, match="decoder layer 0 routed no token .* moe_layers"):
        read_trace(s, seed=0)
    sglang_file(tmp_path, 0, [{k: v for k, v in rec.items() if k != "positions"}], p2l)
    with pytest.raises(ImportFileError, match=r"records\[0\]\.positions: missing"):
        s.check_files()
    with pytest.raises(ImportFileError, match="top_k=3"):
        sglang_file(tmp_path, 0, [rec], p2l)
        read_trace(spec(format="sglang-per-token", path=str(tmp_path), concurrency=2, top_k=3), seed=0)


def routed_line(a, prompt):
    """One SGLang response: ``a`` is [seq_len - 1, layers, k] int32 routed experts."""
    return json.dumps({"text": "...", "meta_info": {
        "id": "r", "prompt_tokens": prompt, "completion_tokens": len(a) + 1 - prompt,
        "routed_experts": base64.b64encode(np.ascontiguousarray(a, "<i4").tobytes()).decode()}})


@pytest.mark.parametrize("physical", [None, "moe-rows", "all-rows"])
def test_sglang_routed_experts_round_trip(tmp_path, rng, physical):
    Lall, E, k, C = 3, 8, 2, 4  # decoder layer 0 dense (zeros in the array)
    lengths = rng.integers(3, 12, size=9)
    p2l = p2l_map(rng, Lall - 1, E, replicas=3)
    planted, lines = [], []
    for n in lengths:
        logical = planted_routing(rng, n, Lall - 1, E, k)
        a = np.zeros((n, Lall, k), np.int32)
        a[:, 1:] = logical
        if physical:  # an EPLB run reports physical slots: any replica of the expert
            for (t, ly, c), e in np.ndenumerate(logical):
                a[t, ly + 1, c] = rng.choice(np.flatnonzero(p2l[ly] == e))
        planted.append(logical)
        lines.append(routed_line(a, prompt=int(n) // 2 + 1))
    path = tmp_path / "responses.jsonl"
    path.write_text("\n".join(lines) + "\n\n")
    # the map: a row per MoE layer, or SGLang's own with a row per decoder layer (the dense one's unused)
    np.save(tmp_path / "p2l.npy", p2l if physical == "moe-rows" else np.vstack([p2l_map(rng, 1, E, 3), p2l]))
    extra = {"physical_to_logical": str(tmp_path / "p2l.npy")} if physical else {"experts": E}
    s = spec(format="sglang-routed-experts", path=str(path), top_k=k, moe_layers=[1, 2], concurrency=C, **extra)
    s.check_files()
    tr = round_trip(tmp_path, *read_trace(s, seed=0))
    cols = tr.token_columns()
    got = tr.experts_by_layer()
    assert tr.n_iterations >= 1 and tr.meta.layer_index == (1, 2) and tr.meta.num_experts == E
    for t in range(tr.n_tokens):  # every token is its request's row, experts sorted
        d, p = int(cols["doc"][t]), int(cols["pos"][t])
        np.testing.assert_array_equal(got[t], np.sort(planted[d][p], -1))
        assert cols["is_test"][t] == (2 * p >= lengths[d])
    assert tr.frame.get_column("token").null_count() == tr.frame.height  # responses hold no prompt token ids


def test_sglang_routed_experts_errors(tmp_path):
    a = np.array([[[0, 1], [2, 3]], [[1, 2], [3, 9]]], np.int32)  # 2 tokens, 2 layers, k=2; id 9 >= 8
    (tmp_path / "r.jsonl").write_text(routed_line(a, prompt=2) + "\n")
    s = spec(format="sglang-routed-experts", path=str(tmp_path / "r.jsonl"), top_k=2, experts=8, concurrency=1)
    with pytest.raises(ImportFileError, match=r"line 1: meta_info\.routed_experts: expert id 9 is outside experts=8"):
        read_trace(s, seed=0)
    (tmp_path / "r.jsonl").write_text(json.dumps({"meta_info": {"prompt_tokens": 3}}) + "\n")
    with pytest.raises(ImportFileError, match="return_routed_experts"):
        s.check_files()
    (tmp_path / "r.jsonl").write_text(routed_line(a, prompt=2) + "\n")
    with pytest.raises(ImportFileError, match=r"holds 4 tokens x 1 layers x 2; prompt_tokens \+ completion_tokens"):
        read_trace(spec(format="sglang-routed-experts", path=str(tmp_path / "r.jsonl"), top_k=2, experts=8,
                        num_hidden_layers=1), seed=0)


def flame_folder(folder, rng, layers, T, E, k):
    folder.mkdir()
    planted = {}
    for layer in layers:
        idx = planted_routing(rng, T, 1, E, k)[:, 0]
        sc = rng.dirichlet(np.ones(k), size=T).astype(np.float32)
        pq.write_table(pa.table({"scores": pa.array(sc.tolist(), pa.list_(pa.float32())),
                                 "indices": pa.array(idx.tolist(), pa.list_(pa.int64()))}), folder / f"{layer}.parquet")
        planted[layer] = (idx, sc)
    return planted


def test_flame_moe_round_trip_keeps_scores_as_weights(tmp_path, rng):
    T, E, k, C = 70, 64, 6, 16
    planted = flame_folder(tmp_path / "iter_0100", rng, [1, 3, 12], T, E, k)
    (tmp_path / "iter_0100" / "README.md").write_text("not a layer")
    s = spec(format="flame-moe", path=str(tmp_path / "iter_0100"), top_k=k, concurrency=C)
    assert s.files() == sorted(str(tmp_path / "iter_0100" / f"{layer}.parquet") for layer in (1, 3, 12))
    s.check_files()
    meta, table = read_trace(s, seed=1)
    tr = round_trip(tmp_path, meta, table)
    assert (tr.n_tokens, meta.layer_index, meta.num_experts, meta.config["tokens_dropped"]) == (64, (1, 3, 12), 64, 6)
    got_e, got_w = tr.experts_by_layer(), tr.weights().reshape(64, 3, k)
    for j, layer in enumerate((1, 3, 12)):
        idx, sc = planted[layer]
        order = np.lexsort((idx, -sc), axis=-1)  # weight descending, ties lower id
        np.testing.assert_array_equal(got_e[:, j], np.take_along_axis(idx, order, -1)[:64])
        np.testing.assert_array_equal(got_w[:, j], np.take_along_axis(sc, order, -1)[:64])
    cols = tr.token_columns()
    np.testing.assert_array_equal(cols["is_test"], 2 * np.arange(64) >= T)


def test_flame_moe_errors(tmp_path, rng):
    flame_folder(tmp_path / "a", rng, [0, 1], 20, 64, 6)
    with pytest.raises(ImportFileError, match=r"0\.parquet: indices: expert id \d+ .* outside 0\.\.31 \(experts=32\)"):
        read_trace(spec(format="flame-moe", path=str(tmp_path / "a"), experts=32, concurrency=4), seed=0)
    pq.write_table(pa.table({"scores": [[0.5, 0.5]], "indices": [[1, 2]]}), tmp_path / "a" / "2.parquet")
    with pytest.raises(ImportFileError, match=r"2\.parquet: has 1 rows, 0\.parquet has 20"):
        spec(format="flame-moe", path=str(tmp_path / "a")).check_files()
    pq.write_table(pa.table({"indices": [[1, 2]]}), tmp_path / "a" / "2.parquet")
    with pytest.raises(ImportFileError, match=r"2\.parquet: scores: missing column"):
        spec(format="flame-moe", path=str(tmp_path / "a")).check_files()


# --- real-size dumps: streamed, checked cheaply, nothing heavy at import ------------------------------------

class LoadWatch:
    """Stands in for ``sglang_dumps.torch_load``: every rank file must be memory-mapped, and the tensors of the
    file opened before must all be released (garbage) by the time the next file is opened."""

    def __init__(self, real):
        self.real, self.alive, self.opened = real, [], []

    def __call__(self, path, *, mmap=False):
        gc.collect()
        held = [r for r in self.alive if r() is not None]
        assert not held, f"{len(held)} tensors of {self.opened[-1]} still held when {path.name} is opened"
        assert mmap, f"{path.name} read without mmap"
        self.opened.append(path.name)
        d = self.real(path, mmap=mmap)
        self.alive = [weakref.ref(v) for rec in d.get("records", []) for v in rec.values()
                      if isinstance(v, torch.Tensor)]
        return d


def test_sglang_per_pass_streams_one_rank_file_at_a_time(tmp_path, rng, monkeypatch):
    from moelab.imports import sglang_dumps

    I, L, E, ep = 5, 3, 6, 3
    hot = rng.integers(1, 20, size=(I, L, E))
    p2l = p2l_map(rng, L, E, replicas=3)
    per_rank = split_counts(hot, p2l, ep, rng)
    for r in range(ep):
        c = per_rank[r].astype([np.int64, np.float32, np.uint8][r])  # whole counts in any dtype sum exactly
        sglang_file(tmp_path, r, [{"forward_pass_id": i, "rank": r, "gatherer_key": "primary",
                                   "global_physical_count": torch.from_numpy(c[i])} for i in range(I)], p2l)
    watch = LoadWatch(sglang_dumps.torch_load)
    monkeypatch.setattr(sglang_dumps, "torch_load", watch)
    s = spec(format="sglang-per-pass", path=str(tmp_path), ep_size=ep)
    s.check_files()
    np.testing.assert_array_equal(read_hotness(s), hot)
    assert len(watch.opened) == 2 * ep  # the check, then the read: each file once


def test_sglang_per_token_streams_one_rank_file_at_a_time(tmp_path, rng, monkeypatch):
    from moelab.imports import sglang_dumps

    L, E, k, ep, T = 2, 6, 2, 3, 4
    p2l = np.tile(np.arange(E), (L, 1))
    planted = {}
    for r in range(ep):
        recs = []
        for fp in (1, 0):  # file order is not stream order
            logical = planted_routing(rng, T, L, E, k)
            planted[fp, r] = logical
            ids = np.full((L, T, 8), -1, np.int32)
            ids[..., :k] = logical.transpose(1, 0, 2)
            recs.append({"forward_pass_id": fp, "rank": r, "gatherer_key": "primary",
                         "topk_ids_of_layer": torch.from_numpy(ids), "input_ids": torch.arange(T) + 100 * r,
                         "positions": torch.arange(T), "extend_seq_lens": torch.tensor([T]), "forward_mode": 1})
        sglang_file(tmp_path, r, recs, p2l)
    watch = LoadWatch(sglang_dumps.torch_load)
    monkeypatch.setattr(sglang_dumps, "torch_load", watch)
    meta, table = read_trace(spec(format="sglang-per-token", path=str(tmp_path), ep_size=ep, concurrency=T), seed=0)
    tr = round_trip(tmp_path, meta, table)
    assert len(watch.opened) == ep and tr.n_tokens == 2 * ep * T
    np.testing.assert_array_equal(tr.experts_by_layer(), np.sort(np.concatenate([planted[key] for key in
                                                                                 sorted(planted)]), -1))
    np.testing.assert_array_equal(tr.token_columns()["token"], np.tile(np.arange(T), 2 * ep) +
                                  np.tile(np.repeat(100 * np.arange(ep), T), 2))


def test_trtllm_is_checked_from_headers_and_read_without_a_call_per_key(tmp_path, rng, monkeypatch):
    import safetensors
    import safetensors.numpy

    def refuse(*a, **kw):
        raise AssertionError("a safetensors call: the header is parsed and the data mapped directly")

    hot = rng.integers(0, 25, size=(7, 3, 6))
    folder = trtllm_folder(tmp_path / "es", hot, [2, 4, 6, 8, 10, 12, 14], [1, 3, 5], 3, rng)
    # rank 2 in float32, written in another key order: the ranks line up by key, not by position
    d = safetensors.numpy.load_file(str(folder / "rank2.safetensors"))
    save_file({key: d[key].astype(np.float32) for key in sorted(d, reverse=True)}, str(folder / "rank2.safetensors"))
    monkeypatch.setattr(safetensors, "safe_open", refuse)
    monkeypatch.setattr(safetensors.numpy, "load_file", refuse)
    s = spec(format="trtllm-expert-statistic", path=str(folder), ep_size=3, experts=6)
    s.check_files()
    np.testing.assert_array_equal(read_hotness(s), hot)
    monkeypatch.undo()
    # one file of two dtypes (not TensorRT-LLM's own layout) is read too, tensor by tensor
    d = safetensors.numpy.load_file(str(folder / "rank1.safetensors"))
    save_file({key: v.astype(np.int16 if key.startswith("1") else np.int64) for key, v in d.items()},
              str(folder / "rank1.safetensors"))
    np.testing.assert_array_equal(read_hotness(s), hot)


def test_trtllm_header_errors(tmp_path, rng):
    hot = rng.integers(0, 9, size=(2, 2, 4))
    folder = trtllm_folder(tmp_path / "es", hot, [0, 1], [0, 1], 2, rng)
    s = spec(format="trtllm-expert-statistic", path=str(folder))
    good = (folder / "rank1.safetensors").read_bytes()
    (folder / "rank1.safetensors").write_bytes(good[:-8])
    with pytest.raises(ImportFileError, match=r"rank1\.safetensors: not a readable safetensors file \(data offsets"):
        s.check_files()
    (folder / "rank1.safetensors").write_bytes(good[:5])
    with pytest.raises(ImportFileError, match=r"rank1\.safetensors: not a readable safetensors file"):
        read_hotness(s)
    d = {f"{i}_{j}": np.ones(4, np.int64) for i in (0, 1) for j in (0, 1)}
    save_file({**d, "0_1": np.ones(5, np.int64)}, str(folder / "rank1.safetensors"))
    with pytest.raises(ImportFileError, match=r"rank1\.safetensors: '0_1': has shape \(5,\), expected \(4,\)"):
        s.check_files()
    save_file({**d, "0_x": np.ones(4, np.int64)}, str(folder / "rank1.safetensors"))
    with pytest.raises(ImportFileError, match=r"rank1\.safetensors: '0_x': expected keys '<iteration>_<layer>'"):
        s.check_files()
    save_file({**d, "1_0": np.array([0, np.nan, 1, 1])}, str(folder / "rank1.safetensors"))
    with pytest.raises(ImportFileError, match=r"rank1\.safetensors: '1_0': holds NaN or infinite values"):
        read_hotness(s)
    save_file({**d, "01_0": np.ones(4, np.int64)}, str(folder / "rank0.safetensors"))
    save_file({**d, "01_0": np.ones(4, np.int64)}, str(folder / "rank1.safetensors"))
    with pytest.raises(ImportFileError, match=r"rank0\.safetensors: '1_0': names the same \(iteration, layer\)"):
        s.check_files()
    save_file({key: v for key, v in d.items() if key != "1_1"}, str(folder / "rank0.safetensors"))
    save_file({key: v for key, v in d.items() if key != "1_1"}, str(folder / "rank1.safetensors"))
    with pytest.raises(ImportFileError, match=r"rank0\.safetensors: '1_1': missing"):
        s.check_files()  # the same keys in every rank, but not every (iteration, layer)


def test_sglang_dense_layers_without_moe_layers_are_refused(tmp_path, rng):
    hot = rng.integers(1, 40, size=(4, 3, 8)).astype(np.int32)
    hot[:, [0, 2]] = 0  # dense decoder layers 0 and 2
    torch.save({"rank": 0, "logical_count": torch.from_numpy(hot)}, tmp_path / "stat.pt")
    with pytest.raises(ImportFileError, match=r"stat\.pt: logical_count: decoder layer\(s\) \[0, 2\] counted no "
                                              r"token in any forward pass: dense layers; list the MoE layers in "
                                              r"the config key moe_layers"):
        read_hotness(spec(format="sglang-stat", path=str(tmp_path / "stat.pt"), ring_start=0))
    np.testing.assert_array_equal(read_hotness(spec(format="sglang-stat", path=str(tmp_path / "stat.pt"),
                                                    moe_layers=[1], ring_start=0)), hot[:, [1]])
    p2l = p2l_map(rng, 3, 8, replicas=2)
    per_rank = split_counts(hot, p2l, 2, rng)
    dump = tmp_path / "dump"
    dump.mkdir()
    for r in range(2):
        sglang_file(dump, r, [{"forward_pass_id": i, "rank": r, "gatherer_key": "primary",
                               "global_physical_count": torch.from_numpy(per_rank[r, i])} for i in range(4)], p2l)
    with pytest.raises(ImportFileError, match=r"dump: global_physical_count: decoder layer\(s\) \[0, 2\] counted no "
                                              r"token .* moe_layers"):
        read_hotness(spec(format="sglang-per-pass", path=str(dump)))
    np.testing.assert_array_equal(read_hotness(spec(format="sglang-per-pass", path=str(dump), moe_layers=[1])),
                                  hot[:, [1]])


def test_one_rank_file_of_a_dump_is_refused(tmp_path, rng):
    p2l = p2l_map(rng, 2, 4, 2)
    rec = lambda r: {"forward_pass_id": 0, "rank": r, "gatherer_key": "primary",  # noqa: E731
                     "global_physical_count": torch.ones(2, 6, dtype=torch.int32)}
    # as SGLang writes a dump: each rank names its file with its own time.time(), so the times differ
    one = sglang_file(tmp_path, 0, [rec(0)], p2l, time="1712345678.25")
    sglang_file(tmp_path, 1, [rec(1)], p2l, time="1712345678.31")
    for fmt in ("sglang-per-pass", "sglang-per-token"):
        with pytest.raises(ImportFileError, match=r"_0\.pt: one rank file of a dump whose other ranks \[1\] are in "
                                                  r"the same folder.* Give the folder .* as path instead \(and "
                                                  r"ep_size"):
            spec(format=fmt, path=str(one)).files()
    # the folder imports every rank, whatever the times in the names
    folder = spec(format="sglang-per-pass", path=str(tmp_path), ep_size=2)
    folder.check_files()
    assert read_hotness(folder).sum() == 2 * 2 * 6
    alone = tmp_path / "alone"
    alone.mkdir()
    (tmp_path / one.name).rename(alone / one.name)
    s = spec(format="sglang-per-pass", path=str(alone / one.name))
    s.check_files()
    assert read_hotness(s).sum() == 2 * 6


class SGLangStatRing:
    """SGLang's stat-mode buffer as its recorder keeps it: a ring of ``size`` rows, pass i written to the row
    after the previous one, wrapping; a reset zeroes the rows and keeps the write position; a dump saves the
    whole ring with ``logical_count`` and no write position."""

    def __init__(self, size, L, E):
        self.buffer = np.zeros((size, L, E), np.int32)
        self.index = 0

    def append(self, counts):
        self.buffer[self.index] = counts
        self.index = (self.index + 1) % len(self.buffer)

    def reset(self):
        self.buffer[...] = 0

    def dump(self, path):
        torch.save({"rank": 0, "logical_count": torch.from_numpy(self.buffer.copy()),
                    "average_utilization_rate_over_window": None}, path)


def test_sglang_stat_ring_buffer_is_unwound(tmp_path, rng):
    size, L, E = 10, 2, 8
    passes = rng.integers(0, 30, size=(23, L, E)).astype(np.int32)
    passes[:, :, 0] += 1  # every pass routes some token (SGLang records no empty pass)
    ring = SGLangStatRing(size, L, E)
    for p in passes[:6]:
        ring.append(p)
    ring.dump(tmp_path / "partial.pt")  # 6 of 10 rows written, 4 still zero
    s = spec(format="sglang-stat", path=str(tmp_path / "partial.pt"))
    s.check_files()
    notes = {}
    np.testing.assert_array_equal(read_hotness(s, notes), passes[:6])
    assert notes == {"ring_rows": size, "ring_start": 0, "ring_start_from": "unwritten rows", "passes": 6}
    # a reset zeroes the ring and keeps the write position: the next passes start mid-ring and wrap
    ring.reset()
    for p in passes[6:13]:
        ring.append(p)
    ring.dump(tmp_path / "after_reset.pt")
    np.testing.assert_array_equal(read_hotness(spec(format="sglang-stat", path=str(tmp_path / "after_reset.pt"))),
                                  passes[6:13])
    # wrapped: every row written, rotated; the file cannot say where the ring starts
    for p in passes[13:]:
        ring.append(p)
    ring.dump(tmp_path / "wrapped.pt")
    full = spec(format="sglang-stat", path=str(tmp_path / "wrapped.pt"))
    with pytest.raises(ImportFileError, match=r"wrapped\.pt: logical_count: every one of its 10 rows is written, so "
                                              r"SGLang's ring buffer may have wrapped.*give ring_start"):
        full.check_files()
    start = 23 % size  # the passes recorded mod the size: the user knows it (or its log does)
    np.testing.assert_array_equal(
        read_hotness(spec(format="sglang-stat", path=str(tmp_path / "wrapped.pt"), ring_start=start)),
        passes[13:])
    with pytest.raises(ImportFileError, match=r"ring_start=10 is outside 0\.\.9"):
        read_hotness(spec(format="sglang-stat", path=str(tmp_path / "wrapped.pt"), ring_start=10))
    with pytest.raises(ImportFileError, match=r"row 6 \(ring_start\) was never written"):
        read_hotness(spec(format="sglang-stat", path=str(tmp_path / "partial.pt"), ring_start=6))
    # an all-zero row inside the written block: which block is unwritten is ambiguous
    gap = passes[:10].copy()
    gap[[3, 7]] = 0
    torch.save({"rank": 0, "logical_count": torch.from_numpy(gap)}, tmp_path / "gaps.pt")
    with pytest.raises(ImportFileError, match=r"unwritten \(all-zero\) rows in 2 places \(3\.\.3, 7\.\.7\)"):
        spec(format="sglang-stat", path=str(tmp_path / "gaps.pt")).check_files()
    with pytest.raises(ConfigError, match=r"imports\[0\]\.ring_start: expected the row of the oldest"):
        spec(format="sglang-stat", path="s.pt", ring_start=-1)
    cut = tmp_path / "cut.pt"  # a dump cut short (a full disk, a copy interrupted)
    cut.write_bytes((tmp_path / "partial.pt").read_bytes()[:-200])
    with pytest.raises(ImportFileError, match=r"cut\.pt: truncated or corrupt: not a readable torch\.save file"):
        spec(format="sglang-stat", path=str(cut)).check_files()


def test_importing_the_package_is_light():
    code = ("import sys, moelab.imports; from moelab.imports import ImportSpec, FORMATS; "
            "print(' '.join(m for m in ('torch', 'safetensors', 'pyarrow', 'numpy', 'moelab.hotness', "
            "'moelab.imports.hotness_formats', 'moelab.imports.trace_formats', 'moelab.imports.checks', "
            "'moelab.imports.loaders') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == []
    code = ("import sys; from moelab.imports import ImportFileError, read_hotness, read_trace; "
            "print(ImportFileError.__mro__[1].__name__, 'numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["HotnessError", "False"]  # the error's base class comes without numpy
