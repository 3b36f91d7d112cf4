"""moelab.kernels JAX side: every implementation against the torch reference, capacity drops, the Pallas
kernels in interpret mode, the shard_map EP variant on several host devices, the benchmark rows."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from moelab.kernels import bench, shapes
from moelab.kernels import jax_moe as jm
from moelab.kernels import torch_moe as tm

jnp = pytest.importorskip("jax.numpy")
SRC = Path(__file__).resolve().parents[1] / "src"


def problem(T=48, E=8, k=3, H=32, F=16, holes=0, activation="silu", seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.stack([torch.randperm(E, generator=g)[:k] for _ in range(T)])
    ids.view(-1)[torch.randperm(T * k, generator=g)[:holes]] = -1
    wts = torch.rand(T, k, generator=g)
    w = tm.make_weights(E, H, F, activation, dtype=torch.float32, device="cpu", seed=seed + 1)
    x = torch.randn(T, H, generator=g)
    jargs = tuple(jnp.asarray(a.numpy()) for a in (x, ids, wts, w.gate_up, w.down))
    return (x, ids, wts, w), jargs


@pytest.mark.parametrize("activation", shapes.ACTIVATIONS)
@pytest.mark.parametrize("holes", [0, 30])
def test_every_jax_implementation_agrees_with_the_torch_loop(activation, holes):
    targs, jargs = problem(holes=holes, activation=activation)
    ref = tm.moe_loop(*targs).numpy()
    scale = np.abs(ref).max()
    outs = {
        "dense": jm.dense(*jargs, activation=activation, capacity_factor=100.0)[0],
        "ragged": jm.ragged(*jargs, activation=activation),
        "pallas_gmm": jm.pallas_gmm(*jargs, activation=activation, block_m=8, interpret=True),
        "pallas_fused": jm.pallas_fused(*jargs, activation=activation, block_m=8, interpret=True),
    }
    for name, out in outs.items():
        assert np.abs(np.asarray(out) - ref).max() / scale < 1e-5, name


def test_dense_capacity_drops_what_the_torch_capacity_version_drops():
    targs, jargs = problem(T=64, E=4, k=2, seed=3)
    x, ids, wts, w = targs
    pairs = int((ids >= 0).sum())
    out_t, drop_t = tm.moe_capacity(x, ids, wts, w, factor=0.8)
    out_j, drop_j = jm.dense(*jargs, capacity_factor=0.8, pairs=pairs)
    assert int(drop_j) == drop_t > 0
    assert np.abs(np.asarray(out_j) - out_t.numpy()).max() < 1e-5


def test_tile_layout_aligns_each_expert_to_whole_tiles():
    padded, tile_expert, n_tiles = jm.tile_layout(jnp.array([3, 0, 9], jnp.int32), 12, 4)
    assert n_tiles == 3 + 3
    # expert 0: rows 0-2 -> tile 0; expert 2: rows 3-11 -> tiles 1-3 (padded rows 4..12)
    assert np.asarray(padded).tolist() == [0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    assert np.asarray(tile_expert).tolist()[:4] == [0, 2, 2, 2]


def test_shard_map_ep_matches_one_device():
    """Experts split over 4 host devices: the summed outputs equal the single-device result."""
    code = (
        "import numpy as np, jax\n"
        "from moelab.kernels import jax_moe as jm\n"
        "assert jax.device_count() == 4, jax.devices()\n"
        "rng = np.random.default_rng(0); T, E, k, H, F = 40, 16, 4, 32, 16\n"
        "ids = np.stack([rng.choice(E, k, replace=False) for _ in range(T)])\n"
        "w = rng.random((T, k)).astype(np.float32); x = rng.standard_normal((T, H)).astype(np.float32)\n"
        "gu = (rng.standard_normal((E, H, 2 * F)) / 6).astype(np.float32)\n"
        "dn = (rng.standard_normal((E, F, H)) / 4).astype(np.float32)\n"
        "mesh = jax.make_mesh((4,), ('ep',))\n"
        "ref = np.asarray(jm.ragged(x, ids, w, gu, dn))\n"
        "out = jm.shard_map_ep(*jm.place_ep(mesh, x, ids, w, gu, dn), mesh=mesh)\n"
        "assert len(out.sharding.device_set) == 4\n"
        "print(float(np.abs(np.asarray(out) - ref).max() / np.abs(ref).max()))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC), "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert float(res.stdout.strip().splitlines()[-1]) < 1e-5


def test_distributed_is_single_process_outside_multi_task_slurm_jobs(monkeypatch):
    monkeypatch.delenv("SLURM_NTASKS", raising=False)
    assert jm.init_distributed() is False
    monkeypatch.setenv("SLURM_NTASKS", "1")
    assert jm.init_distributed() is False


def test_jax_benchmark_rows_label_interpret_mode(tmp_path):
    from moelab.kernels.jax_backend import JaxBackend
    from moelab.kernels.workloads import Workload

    rng = np.random.default_rng(1)
    ids = np.stack([rng.choice(16, 4, replace=False) for _ in range(24)])
    w = Workload("t", "synthetic", "t", 16, 4, 8, 24, 0, 10, ids, rng.random((24, 4)).astype(np.float32))
    spec = bench.BenchSpec(implementations=("jax-dense", "jax-ragged", "jax-pallas-gmm", "jax-pallas-fused",
                                            "jax-shard_map"), devices=2, ep_sizes=(1, 2), warmup=1, iters=2)
    notes = []
    rows = bench.run([w], [shapes.MoEShape("s", hidden=32, ffn=16, experts=16, top_k=4)], spec, notes.append,
                     backend=JaxBackend(spec, notes.append, interpret_max_tokens=16))
    kinds = {(r["implementation"], r["ep"]): r["device_kind"] for r in rows}
    assert kinds[("jax-ragged", 1)] == "cpu" and kinds[("jax-dense", 2)] == "cpu"
    # 24 tokens at EP=1 is over the interpret limit; the EP=2 rank has fewer tokens only if some skip it
    assert ("jax-pallas-gmm", 1) not in kinds and any("interpret_max_tokens=16" in n for n in notes)
    assert all(r["backend"] == "jax" and r["max_rel_err"] < 1e-4 for r in rows)
    assert any("jax-shard_map: not run" in n for n in notes)
    small = bench.run([w], [shapes.MoEShape("s", hidden=32, ffn=16, experts=16, top_k=4)],
                      bench.BenchSpec(implementations=("jax-pallas-fused",), warmup=1, iters=2), notes.append,
                      backend=JaxBackend(bench.BenchSpec(implementations=("jax-pallas-fused",), warmup=1, iters=2),
                                         notes.append, interpret_max_tokens=64))
    assert [r["device_kind"] for r in small] == ["interpret"]


def test_jax_profiler_trace_per_case(tmp_path):
    from moelab.kernels.jax_backend import JaxBackend
    from moelab.kernels.workloads import Workload

    rng = np.random.default_rng(2)
    ids = np.stack([rng.choice(16, 4, replace=False) for _ in range(8)])
    w = Workload("t", "synthetic", "t", 16, 4, 8, 8, 0, 1, ids, rng.random((8, 4)).astype(np.float32))
    spec = bench.BenchSpec(implementations=("jax-ragged",), warmup=1, iters=1, profile_dir=str(tmp_path / "prof"))
    bench.run([w], [shapes.MoEShape("s", hidden=32, ffn=16, experts=16, top_k=4)], spec, lambda m: None,
              backend=JaxBackend(spec, lambda m: None))
    assert list((tmp_path / "prof").glob("jax-s-t8-ep1-contiguous-jax-ragged/plugins/profile/*/*.trace.json.gz"))


def test_device_times_are_read_from_the_xla_modules_line():
    """The TPU/GPU trace layout: a /device: process with an "XLA Modules" thread, one event per step."""
    from moelab.kernels.jax_backend import device_module_times

    events = [
        {"ph": "M", "name": "process_name", "pid": 1, "args": {"name": "/host:CPU"}},
        {"ph": "M", "name": "process_name", "pid": 2, "args": {"name": "/device:TPU:0"}},
        {"ph": "M", "name": "thread_name", "pid": 2, "tid": 3, "args": {"name": "XLA Ops"}},
        {"ph": "M", "name": "thread_name", "pid": 2, "tid": 4, "args": {"name": "XLA Modules"}},
        {"ph": "X", "pid": 2, "tid": 4, "ts": 200.0, "dur": 1500.0, "name": "jit_ragged"},
        {"ph": "X", "pid": 2, "tid": 4, "ts": 100.0, "dur": 1000.0, "name": "jit_ragged"},
        {"ph": "X", "pid": 2, "tid": 3, "ts": 100.0, "dur": 10.0, "name": "fusion"},
        {"ph": "X", "pid": 1, "tid": 9, "ts": 90.0, "dur": 5000.0, "name": "PjitFunction"},
    ]
    assert device_module_times(events) == [1.0, 1.5]
    assert device_module_times(events[:1] + events[-1:]) is None  # a CPU trace: no device line
