"""moelab.kernels: shapes, workloads cut from traces, the torch implementations against the reference, the
EP split, the benchmark rows and the standalone entry point."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from moelab import traces
from moelab.kernels import bench, bench_summary, registry, shapes, workloads
from moelab.kernels import torch_moe as tm
from moelab.kernels.from_trace import workloads as cut_workloads
from moelab.synthetic.scenarios import Scenario, StreamSpec, SyntheticSpec, generate

SRC = Path(__file__).resolve().parents[1] / "src"
STREAM = StreamSpec(concurrency=16, iterations=64, layers=2, min_request=4, max_request=40)


def make_trace(tmp_path, E=16, k=4, seed=3, **sc):
    spec = SyntheticSpec(Scenario(**sc), E, k, STREAM, 4096, seed=seed)
    meta, table, _ = generate(spec)
    path = tmp_path / f"{spec.trace_id}.parquet"
    traces.write_trace(path, meta, table)
    return traces.read_trace(path), spec.trace_id


def routing(T, E, k, seed=0, holes=0):
    """Random distinct top-k ids (``holes`` slots set to -1, as on an EP rank) and weights."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.stack([torch.randperm(E, generator=g)[:k] for _ in range(T)])
    ids.view(-1)[torch.randperm(T * k, generator=g)[:holes]] = -1
    return ids, torch.rand(T, k, generator=g)


# ---- shapes -------------------------------------------------------------------------------------------------

def test_builtin_shapes_and_scaling():
    ds = shapes.BUILTIN["DeepSeek-V3"]
    assert (ds.hidden, ds.ffn, ds.experts, ds.top_k, ds.shared_experts) == (7168, 2048, 256, 8, 1)
    small = ds.scaled(8)
    assert (small.hidden, small.ffn, small.scale, small.experts) == (896, 256, 8, 256)
    tiny = shapes.MoEShape("tiny", hidden=128, ffn=64, experts=32, top_k=8)
    assert tiny.scaled(8) is tiny and shapes.BUILTIN["Qwen3-30B-A3B"].scaled(8).ffn == 96
    assert "/ 8" in small.label and ds.label == "DeepSeek-V3"


@pytest.mark.parametrize("cfg,want", [
    ({"hidden_size": 4096, "intermediate_size": 14336, "num_local_experts": 8, "num_experts_per_tok": 2,
      "hidden_act": "silu"}, (4096, 14336, 8, 2, 0, "silu")),
    ({"hidden_size": 2048, "moe_intermediate_size": 1408, "intermediate_size": 5632, "num_experts": 60,
      "num_experts_per_tok": 4, "shared_expert_intermediate_size": 5632}, (2048, 1408, 60, 4, 1, "silu")),
    ({"hidden_size": 7168, "moe_intermediate_size": 2048, "n_routed_experts": 256, "num_experts_per_tok": 8,
      "n_shared_experts": 1}, (7168, 2048, 256, 8, 1, "silu")),
    ({"model_type": "gpt_oss", "hidden_size": 2880, "intermediate_size": 2880, "num_local_experts": 32,
      "num_experts_per_tok": 4}, (2880, 2880, 32, 4, 0, "swigluoai")),
])
def test_hf_config_spellings(cfg, want):
    s = shapes.from_hf_config(cfg, "m")
    assert (s.hidden, s.ffn, s.experts, s.top_k, s.shared_experts, s.activation) == want


def test_shape_from_a_real_checkpoint_config(tmp_path):
    from transformers import OlmoeConfig

    OlmoeConfig(hidden_size=64, intermediate_size=32, num_experts=8, num_experts_per_tok=2,
                num_hidden_layers=1, num_attention_heads=2, vocab_size=100).save_pretrained(tmp_path)
    s = shapes.resolve(str(tmp_path))
    assert (s.hidden, s.ffn, s.experts, s.top_k, s.activation) == (64, 32, 8, 2, "silu")


def test_bad_shapes_are_named(tmp_path):
    with pytest.raises(shapes.ShapeError, match="not-a-model"):
        shapes.resolve("not-a-model")
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 8, "intermediate_size": 8}))
    with pytest.raises(shapes.ShapeError, match="not an MoE config"):
        shapes.resolve(str(tmp_path))
    with pytest.raises(shapes.ShapeError, match="top_k"):
        shapes.MoEShape("x", hidden=8, ffn=8, experts=2, top_k=4)


# ---- implementations ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("activation", shapes.ACTIVATIONS)
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 3e-2)])
@pytest.mark.parametrize("holes", [0, 37])
def test_grouped_and_capacity_agree_with_the_loop(activation, dtype, tol, holes):
    T, E, k, H, F = 64, 8, 3, 32, 24
    ids, wts = routing(T, E, k, seed=holes, holes=holes)
    w = tm.make_weights(E, H, F, activation, dtype=dtype, device="cpu", seed=1)
    x = torch.randn(T, H, generator=torch.Generator().manual_seed(2)).to(dtype)
    ref = tm.moe_loop(x, ids, wts.to(dtype), w).float()
    scale = ref.abs().max()
    assert scale > 0
    grouped = tm.moe_grouped(x, ids, wts.to(dtype), w).float()
    assert (grouped - ref).abs().max() / scale < tol
    out, dropped = tm.moe_capacity(x, ids, wts.to(dtype), w, factor=100.0)  # nothing dropped
    assert dropped == 0 and (out.float() - ref).abs().max() / scale < tol


def test_capacity_drops_exactly_the_late_pairs():
    """Capacity ceil(cf * pairs / E), first come in token order: checked against a plain-python count."""
    T, E, k, H, F = 40, 4, 2, 16, 8
    ids = torch.tensor([[0, 1]] * 30 + [[2, 3]] * 10)  # expert 0 and 1 get 30 pairs each
    wts = torch.full((T, k), 0.5)
    w = tm.make_weights(E, H, F, "silu", dtype=torch.float32, device="cpu", seed=0)
    x = torch.randn(T, H)
    cap = tm.capacity(T * k, E, 1.0)
    assert cap == 20
    out, dropped = tm.moe_capacity(x, ids, wts, w, factor=1.0)
    assert dropped == 2 * (30 - 20)
    kept = ids.clone()
    kept[20:30] = -1  # tokens 20..29 find experts 0 and 1 full
    assert torch.allclose(out, tm.moe_loop(x, kept, wts, w), atol=1e-5)
    assert torch.all(out[20:30] == 0)


def test_triton_kernel_in_the_interpreter():
    """Our Triton grouped GEMM, run by Triton's CPU interpreter (a GPU compiles the same kernel)."""
    pytest.importorskip("triton", reason="triton is not installed (it ships with CUDA builds of torch)")
    code = (
        "import torch\n"
        "from moelab.kernels import torch_moe as tm\n"
        "from moelab.kernels.triton_moe import moe_triton, tile_table\n"
        "g = torch.Generator().manual_seed(0)\n"
        "for E, k, T, holes in ((8, 2, 70, 0), (16, 4, 33, 40)):\n"
        "    ids = torch.stack([torch.randperm(E, generator=g)[:k] for _ in range(T)])\n"
        "    ids.view(-1)[torch.randperm(T * k, generator=g)[:holes]] = -1\n"
        "    wts = torch.rand(T, k, generator=g)\n"
        "    w = tm.make_weights(E, 48, 40, 'silu', dtype=torch.float32, device='cpu', seed=1)\n"
        "    x = torch.randn(T, 48, generator=g)\n"
        "    ref = tm.moe_loop(x, ids, wts, w)\n"
        "    err = float((moe_triton(x, ids, wts, w) - ref).abs().max() / ref.abs().max())\n"
        "    assert err < 1e-5, err\n"
        "e, r0, r1 = tile_table(torch.tensor([3, 3, 70], dtype=torch.int32), 70, 64)\n"
        "print(e.tolist(), r0[e >= 0].tolist(), r1[e >= 0].tolist())\n"
    )
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(SRC)}
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    # groups of 3, 0 and 67 rows in 64-row tiles (ceil(70/64) + 3 = 5 tiles): [0:3) of expert 0, then [3:67) and [67:70) of expert 2
    assert res.stdout.split("\n")[0] == "[0, 2, 2, -1, -1] [0, 3, 67] [3, 70, 70]"


# ---- workloads ----------------------------------------------------------------------------------------------

def test_workloads_have_exactly_the_traces_group_sizes(tmp_path):
    tr, tid = make_trace(tmp_path, kind="powerlaw", alpha=1.2)
    ws = cut_workloads(tr, tid, [16, 40, 100], [1, 2], ["contiguous", "frequency"], 0.5, seed=5)
    ex = tr.experts_by_layer()
    first = int(tr.n_iterations * 0.5)
    for w in ws:
        t0 = w.start_iteration * tr.meta.concurrency
        assert w.start_iteration >= first
        assert np.array_equal(w.ids, ex[t0:t0 + w.tokens, w.layer])
        assert np.array_equal(w.loads(), np.bincount(ex[t0:t0 + w.tokens, w.layer].ravel(), minlength=16))
        assert sorted(np.bincount(w.placements["frequency"][2], minlength=2).tolist()) == [8, 8]
    starts = {(w.layer, w.start_iteration) for seed in range(6)
              for w in cut_workloads(tr, tid, [40], [1], ["contiguous"], 0.5, seed=seed)}
    assert len(starts) > 1, "a seeded start, not always the same iterations"


def test_scenarios_give_different_group_sizes(tmp_path):
    sizes = {}
    for sc in (dict(kind="balanced"), dict(kind="powerlaw", alpha=1.2), dict(kind="imbalanced", imbalance_factor=3.0)):
        tr, tid = make_trace(tmp_path, **sc)
        w = cut_workloads(tr, tid, [256], [1], ["contiguous"], 0.5, seed=1)[0]
        sizes[tid] = np.sort(w.loads())
    a, b, c = sizes.values()
    assert not np.array_equal(a, b) and not np.array_equal(b, c)
    assert a.max() / a.mean() < 1.2 < b.max() / b.mean()


def test_workload_that_does_not_fit_is_refused(tmp_path):
    tr, tid = make_trace(tmp_path, kind="balanced")
    with pytest.raises(workloads.WorkloadError, match=f"{tid}: 1000 tokens need 63 iterations"):
        cut_workloads(tr, tid, [1000], [1], ["contiguous"], 0.5, seed=1)


def test_workload_file_round_trip_and_bad_files(tmp_path):
    tr, tid = make_trace(tmp_path, kind="powerlaw", alpha=1.2)
    ws = cut_workloads(tr, tid, [16, 64], [1, 4], ["contiguous", "frequency"], 0.5, seed=2)
    path = tmp_path / "w.parquet"
    workloads.write(path, ws)
    back = workloads.read(path)
    for a, b in zip(ws, back):
        assert (a.tokens, a.layer, a.start_iteration) == (b.tokens, b.layer, b.start_iteration)
        assert np.array_equal(a.ids, b.ids) and np.array_equal(a.weights, b.weights)
        assert np.array_equal(a.placements["frequency"][4], b.placements["frequency"][4])
    with pytest.raises(workloads.WorkloadError, match="not a workload file"):
        workloads.read(tmp_path / f"{tid}.parquet")  # a trace, not a workload
    (tmp_path / "junk.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(workloads.WorkloadError, match="junk.parquet: not a readable parquet"):
        workloads.read(tmp_path / "junk.parquet")


def test_ep_ranks_together_give_the_single_device_result(tmp_path):
    tr, tid = make_trace(tmp_path, kind="powerlaw", alpha=1.2)
    w = cut_workloads(tr, tid, [64], [4], ["contiguous", "frequency"], 0.5, seed=3)[0]
    H, F = 16, 8
    full = tm.make_weights(16, H, F, "silu", dtype=torch.float32, device="cpu", seed=0)
    x = torch.randn(64, H)
    ref = tm.moe_grouped(x, torch.from_numpy(w.ids), torch.from_numpy(w.weights), full)
    for placement in ("contiguous", "frequency"):
        total = torch.zeros_like(x)
        pairs = []
        for rank in range(4):
            loc = workloads.ep_local(w, 4, placement, rank)
            sub = tm.ExpertWeights(full.gate_up[loc.local_experts], full.down[loc.local_experts])
            rows = torch.from_numpy(loc.rows)
            total[rows] += tm.moe_grouped(x[rows], torch.from_numpy(loc.ids), torch.from_numpy(loc.weights),
                                          sub)
            pairs.append(loc.pairs)
        assert torch.allclose(total, ref, atol=1e-5)
        assert sum(pairs) == w.ids.size
        busiest = workloads.ep_local(w, 4, placement)
        assert busiest.pairs == max(pairs) and busiest.rank == int(np.argmax(pairs))
        assert busiest.ids.shape[1] <= w.top_k and np.all((busiest.ids >= 0).any(1))


# ---- the benchmark ------------------------------------------------------------------------------------------

def test_benchmark_rows_on_cpu(tmp_path):
    tr, tid = make_trace(tmp_path, kind="powerlaw", alpha=1.2)
    ws = cut_workloads(tr, tid, [8, 64], [1, 2], ["contiguous", "frequency"], 0.5, seed=4)
    shape = shapes.MoEShape("s", hidden=32, ffn=16, experts=16, top_k=4)
    spec = bench.BenchSpec(devices=2, ep_sizes=(1, 2), placements=("contiguous", "frequency"), warmup=1, iters=3,
                           capacity_factor=1.0)
    rows = bench.run(ws, [shape, shapes.MoEShape("other", hidden=8, ffn=8, experts=8, top_k=2)], spec,
                     progress=lambda m: None)
    # 2 token counts x (ep 1 + ep 2 x 2 placements) x 3 implementations; the E8 shape pairs with nothing
    assert len(rows) == 2 * 3 * 3
    for r in rows:
        assert r["device_kind"] == "cpu" and r["device_name"] and r["timing_method"] == "perf-counter"
        assert r["latency_p50_ms"] > 0 and r["latency_p99_ms"] >= r["latency_p50_ms"] >= r["latency_min_ms"]
        assert r["ffn_local"] == (8 if r["ep"] == 1 else 16)
        assert r["max_rel_err"] < 1e-4 and 0 < r["frac_peak_flops"] < 1
        assert r["dropped_pairs"] == 0 or r["implementation"] == "capacity"
    assert any(r["dropped_pairs"] > 0 for r in rows)  # alpha 1.2 at capacity factor 1.0 drops
    csv_text = bench_summary.to_csv(rows)
    assert csv_text.splitlines()[0].startswith("implementation,scenario,num_tokens,ep_size,tp_size")
    assert len(csv_text.splitlines()) == len(rows) + 1
    md = bench_summary.to_markdown(rows)
    assert md.count("## ") == 2 * 3 and "speedup vs loop" in md


def test_a_wrong_implementation_is_refused(monkeypatch, tmp_path):
    tr, tid = make_trace(tmp_path, kind="balanced")
    ws = cut_workloads(tr, tid, [16], [1], ["contiguous"], 0.5, seed=4)
    real = registry.implementations

    def broken(cf):
        impls = real(cf)
        impls["grouped"] = lambda x, i, g, w: (tm.moe_grouped(x, i, g, w) * 1.01, 0)
        return impls

    monkeypatch.setattr(registry, "implementations", broken)
    with pytest.raises(bench.KernelMismatch, match="grouped differs from the per-expert loop"):
        bench.run(ws, [shapes.MoEShape("s", hidden=16, ffn=8, experts=16, top_k=4)], bench.BenchSpec(iters=1),
                  progress=lambda m: None)


def test_no_matching_shape_is_a_clear_error(tmp_path):
    tr, tid = make_trace(tmp_path, kind="balanced")
    ws = cut_workloads(tr, tid, [16], [1], ["contiguous"], 0.5, seed=4)
    with pytest.raises(ValueError, match="no shape in \\['Mixtral-8x7B'\\] has that routing"):
        bench.run(ws, [shapes.BUILTIN["Mixtral-8x7B"]], bench.BenchSpec(), progress=lambda m: None)


def test_standalone_runs_on_torch_numpy_and_pyarrow_alone(tmp_path):
    """The entry point for GPU machines without our environment: polars, snakemake, scipy, numba, altair and
    transformers are made unimportable, and it still writes the pipeline's schema."""
    tr, tid = make_trace(tmp_path, kind="powerlaw", alpha=1.2)
    wfile = tmp_path / "w.parquet"
    workloads.write(wfile, cut_workloads(tr, tid, [16], [1, 2], ["contiguous", "frequency"], 0.5, seed=4))
    blocked = ["polars", "snakemake", "scipy", "numba", "altair", "transformers", "yaml", "jax"]
    code = ("import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in blocked) +
            "from moelab.kernels.standalone import main\n"
            f"sys.exit(main([{str(wfile)!r}, '--shapes', '{{\"name\": \"s\", \"hidden\": 32, \"ffn\": 16, "
            f"\"experts\": 16, \"top_k\": 4}}', '--out', {str(tmp_path / 'rec')!r}, '--device', 'cpu', "
            "'--dtype', 'float32', '--devices', '2', '--ep-sizes', '1', '2', '--warmup', '1', '--iters', '2']))\n")
    res = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(SRC)},
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "rec" / "kernels" / f"{tid}.parquet")
    assert table.num_rows == 3 * 3 and "device_kind" in table.column_names
    assert (tmp_path / "rec" / "summary.md").read_text().startswith("# MoE kernel benchmark")


def test_static_and_compact_slot_orders_agree():
    """The GPU path keeps every slot (static shapes), the CPU path drops non-local ones: same groups."""
    ids, _ = routing(50, 8, 3, seed=4, holes=30)
    o_c, offs_c, valid_c = tm.sorted_slots(ids, 8, compact=True)
    o_s, offs_s, valid_s = tm.sorted_slots(ids, 8, compact=False)
    assert valid_c is None and int(valid_s.sum()) == o_c.numel() == 50 * 3 - 30
    assert torch.equal(o_s[valid_s], o_c) and torch.equal(offs_c, offs_s)
    assert torch.equal(offs_c.diff(prepend=offs_c.new_zeros(1)), torch.bincount(ids[ids >= 0], minlength=8).int())


def test_profiler_traces_per_case(tmp_path):
    tr, tid = make_trace(tmp_path, kind="balanced")
    ws = cut_workloads(tr, tid, [16], [1], ["contiguous"], 0.5, seed=4)
    spec = bench.BenchSpec(implementations=("grouped",), iters=1, warmup=1, profile_dir=str(tmp_path / "prof"))
    bench.run(ws, [shapes.MoEShape("s", hidden=16, ffn=8, experts=16, top_k=4)], spec, progress=lambda m: None)
    trace = json.loads((tmp_path / "prof" / "torch-s-t16-ep1-contiguous-grouped.json").read_text())
    assert any("grouped_mm" in e.get("name", "") for e in trace["traceEvents"])
