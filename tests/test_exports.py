"""Placement files for serving engines: round trips, the engines' constraints, deterministic bytes, and the
redeployment sequence of a real simulator run. No engine is importable here (SGLang, TensorRT-LLM and vLLM
need GPUs and are not installed), so :func:`exports.check` and the readers stand in for their loaders."""

import json

import numpy as np
import pytest
import yaml

from moelab import exports
from moelab.exports import ExportError
from moelab.exports.maps import VLLM_REPLICA_WIDTH
from moelab.placement import policies, static
from moelab.placement import simulator as sim

E, D, S, L = 16, 4, 5, 3


@pytest.fixture
def static_map(rng):
    experts = rng.integers(0, E, size=(64, 2))
    dev = np.stack([static.place(p, experts, E, D, rng) for p in ("random", "frequency", "random")])
    return exports.from_static(dev), dev


@pytest.fixture
def dynamic_map(rng):
    """EPLB's deployment with replicas: every one of D * S slots filled, some experts twice."""
    hot = rng.poisson(np.geomspace(200, 5, E), size=(8, L, E)).astype(float)
    spec = sim.SimSpec(devices=D, slots_per_device=S)
    tables, _ = policies.eplb_policy(spec)(hot, None)
    return exports.physical_to_logical(tables), tables


def _writers(tmp_path, p2l, ep_size=D):
    """Write ``p2l`` in every engine's format; the readers' results, keyed by format."""
    exports.write_sglang(tmp_path / "p.json", p2l, ep_size=ep_size)
    exports.write_trtllm(tmp_path / "p.yaml", p2l, ep_size)
    exports.write_vllm(tmp_path / "p.pt", p2l, ep_size=ep_size)
    trt, trt_ep = exports.read_trtllm(tmp_path / "p.yaml")
    assert trt_ep == ep_size
    return {"sglang": exports.read_sglang(tmp_path / "p.json"), "trtllm": trt,
            "vllm": exports.read_vllm(tmp_path / "p.pt")}


def test_static_placement_round_trips_and_keeps_each_device_its_experts(tmp_path, static_map):
    p2l, dev = static_map
    assert p2l.shape == (L, E) and p2l.dtype == np.int64
    per = E // D
    for layer in range(L):
        for d in range(D):  # device d's experts, ascending, in slots d*E/D ..
            assert p2l[layer, d * per:(d + 1) * per].tolist() == np.flatnonzero(dev[layer] == d).tolist()
    exports.check(p2l, E, D)
    for fmt, back in _writers(tmp_path, p2l).items():
        assert back.dtype == np.int64 and np.array_equal(back, p2l), fmt


def test_dynamic_deployment_with_replicas_round_trips(tmp_path, dynamic_map):
    p2l, tables = dynamic_map
    assert p2l.shape == (L, D * S)
    assert (np.array([np.bincount(row, minlength=E) for row in p2l]) > 1).any(), "no replica to carry"
    assert np.array_equal(p2l.reshape(L, D, S), tables)  # GPU = physical // S
    exports.check(p2l, E, D)
    for fmt, back in _writers(tmp_path, p2l).items():
        assert np.array_equal(back, p2l), fmt
    copies_at, count = exports.logical_to_physical(p2l, E)
    assert (count == np.array([np.bincount(row, minlength=E) for row in p2l])).all()
    for layer in range(L):
        for e in range(E):
            assert p2l[layer, copies_at[layer, e, :count[layer, e]]].tolist() == [e] * int(count[layer, e])
    padded, _ = exports.logical_to_physical(p2l, E, width=VLLM_REPLICA_WIDTH)  # vLLM's buffer width
    assert padded.shape == (L, E, 1024) and (padded[..., :copies_at.shape[2]] == copies_at).all()
    assert (padded[..., copies_at.shape[2]:] == -1).all()


def test_files_hold_what_the_engines_read(tmp_path, dynamic_map):
    """The shapes each engine's loader takes, read with plain json / yaml as the engines do."""
    p2l, _ = dynamic_map
    moe = [2, 3, 5]  # decoder layers 0, 1 and 4 are dense (a leading block, and one between MoE layers)
    exports.write_sglang(tmp_path / "p.json", p2l, layers=moe)
    sg = json.loads((tmp_path / "p.json").read_text())
    assert list(sg) == ["physical_to_logical_map"]  # SGLang passes the keys on as arguments
    rows = sg["physical_to_logical_map"]
    assert len(rows) == 6 and [rows[i] for i in (0, 1, 4)] == [[p % E for p in range(D * S)]] * 3  # dense: trivial
    assert np.array_equal(np.array([rows[i] for i in moe]), p2l)
    assert np.array_equal(exports.read_sglang(tmp_path / "p.json", layers=moe), p2l)
    exports.write_trtllm(tmp_path / "p.yaml", p2l, D, layers=moe)
    trt = yaml.safe_load((tmp_path / "p.yaml").read_text())
    assert sorted(trt) == ["initial_global_assignments", "layer_updates_per_iter", "num_slots"]
    assert trt["num_slots"] == D * S and trt["num_slots"] % D == 0 and trt["layer_updates_per_iter"] == 0
    assert sorted(trt["initial_global_assignments"]) == moe
    assert np.array_equal(exports.read_trtllm(tmp_path / "p.yaml")[0], p2l)
    with pytest.raises(exports.ExportError, match="strictly increasing"):
        exports.write_sglang(tmp_path / "q.json", p2l, layers=[3, 2, 5])
    assert all(len(v) == D * S for v in trt["initial_global_assignments"].values())


def test_same_input_same_bytes(tmp_path, dynamic_map):
    p2l, _ = dynamic_map
    changes = [(4, 1, p2l[2]), (5, 0, p2l[1])]
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        exports.write_sglang(tmp_path / sub / "p.json", p2l)
        exports.write_trtllm(tmp_path / sub / "p.yaml", p2l, D)
        exports.write_vllm(tmp_path / sub / "p.pt", p2l.copy())
        exports.write_redeployments(tmp_path / sub / "r.jsonl", p2l, changes, D)
    for name in ("p.json", "p.yaml", "p.pt", "r.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    exports.write_vllm(tmp_path / "a" / "p.pt", p2l.astype(np.int32))  # the dtype given does not matter
    assert (tmp_path / "a" / "p.pt").read_bytes() == (tmp_path / "b" / "p.pt").read_bytes()


def test_check_refuses_what_engines_refuse(dynamic_map):
    p2l, _ = dynamic_map
    exports.check(p2l, E, D)
    missing = p2l.copy()
    missing[1][missing[1] == 7] = 8
    with pytest.raises(ExportError, match="layer 1: logical expert 7 has no physical slot"):
        exports.check(missing, E, D)
    with pytest.raises(ExportError, match="do not split evenly over ep_size 3"):
        exports.check(p2l, E, 3)
    out = p2l.copy()
    out[2, 5] = E
    with pytest.raises(ExportError, match="layer 2, physical slot 5: expert id 16 is outside"):
        exports.check(out, E, D)
    out[2, 5] = -1
    with pytest.raises(ExportError, match="expert id -1"):
        exports.check(out, E, D)
    with pytest.raises(ExportError, match="rank 3"):
        exports.check(p2l.reshape(L, D, S), E, D)
    with pytest.raises(ExportError, match="rank 1"):
        exports.check(p2l[0], E, D)
    with pytest.raises(ExportError, match="integer"):
        exports.check(p2l.astype(float), E, D)
    with pytest.raises(ExportError, match="cannot hold"):
        exports.check(np.arange(8)[None], E, 2)


def test_writers_refuse_bad_maps_and_deployments_with_empty_slots(tmp_path, dynamic_map):
    p2l, _ = dynamic_map
    with pytest.raises(ExportError, match="not split evenly"):
        exports.write_trtllm(tmp_path / "p.yaml", p2l, 3)
    with pytest.raises(ExportError, match=r"\.json"):
        exports.write_sglang(tmp_path / "p.txt", p2l)
    assert not list(tmp_path.iterdir())
    default = sim.contiguous(L, E, D, S)  # E/D experts per device, the redundant slot left empty
    with pytest.raises(ExportError, match="layer 0, device 0: slot 4 is empty"):
        exports.physical_to_logical(default)
    with pytest.raises(ExportError, match="layer 0: device 2 holds 5 experts, not E/D = 4"):
        exports.from_static(np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3]))


def test_readers_name_the_file_and_the_field(tmp_path, dynamic_map):
    p2l, _ = dynamic_map
    f = tmp_path / "p.json"
    f.write_text(json.dumps({"physical_to_logical_map": p2l.tolist(), "ep": 4}))
    with pytest.raises(ExportError, match=r"p\.json: unexpected keys \['ep'\]"):
        exports.read_sglang(f)
    f.write_text(json.dumps({"physical_to_logical_map": [[0, 1], [0]]}))
    with pytest.raises(ExportError, match="physical_to_logical_map: rows have different lengths"):
        exports.read_sglang(f)
    y = tmp_path / "p.yaml"
    exports.write_trtllm(y, p2l, D)
    y.write_text(y.read_text().replace(f"num_slots: {D * S}", "num_slots: 24"))
    with pytest.raises(ExportError, match=r"p\.yaml: initial_global_assignments lists have 20 experts, num_slots is"):
        exports.read_trtllm(y)
    import torch

    torch.save(torch.zeros(2, 4), tmp_path / "p.pt")
    with pytest.raises(ExportError, match=r"p\.pt: physical_to_logical_map must hold integer"):
        exports.read_vllm(tmp_path / "p.pt")
    r = tmp_path / "r.jsonl"
    exports.write_redeployments(r, p2l, [(4, 1, p2l[2]), (5, 0, p2l[1])], D)
    lines = r.read_text().splitlines()
    r.write_text("\n".join(lines[:1] + lines[2:] + lines[1:2]) + "\n")
    with pytest.raises(ExportError, match=r"r\.jsonl, line 3: field iteration 4 comes before"):
        exports.read_redeployments(r)
    bad = json.loads(lines[1])
    bad["physical_to_logical"][0] = 99
    r.write_text("\n".join([lines[0], json.dumps(bad)]) + "\n")
    with pytest.raises(ExportError, match=r"line 2: field physical_to_logical: .*expert id 99"):
        exports.read_redeployments(r)


def _drifting_hotness(rng, iterations=48):
    """Two hotness profiles that swap every 12 iterations, so EPLB keeps redeploying."""
    profiles = rng.dirichlet(np.full(E, 0.3), size=(2, L)) * 1000
    return np.stack([profiles[(i // 12) % 2] for i in range(iterations)])


def test_redeployment_sequence_of_a_simulator_run(tmp_path, rng):
    hot = _drifting_hotness(rng)
    spec = sim.SimSpec(devices=D, slots_per_device=S, window=8, interval=8)
    policy = policies.eplb_policy(spec)
    initial = policy(hot[:8], None)[0]  # a full deployment to start from (Default leaves slots empty)
    run = sim.simulate(hot, policy, spec, initial=initial, record=True)
    assert np.array_equal(run["initial"], initial)
    changes = run["changes"]
    its = [c[0] for c in changes]
    assert len(set(its)) >= 4 and its == sorted(its)
    assert np.array_equal(exports.replay(run["initial"], changes, len(hot) - 1), run["tables"])

    f = tmp_path / "r.jsonl"
    exports.write_redeployments(f, exports.physical_to_logical(run["initial"]), changes, D)
    init, back = exports.read_redeployments(f)
    assert np.array_equal(init, exports.physical_to_logical(initial))
    assert [(i, layer) for i, layer, _ in back] == [(i, layer) for i, layer, _ in changes]
    last = exports.replay(init, back, len(hot) - 1)
    assert np.array_equal(last, exports.physical_to_logical(run["tables"]))
    # between two changes (and at one, which takes effect at its own iteration): what the simulator had then
    a = next(n for n in range(1, len(its)) if its[n] - its[n - 1] > 1)
    for at in (its[a] - 1, its[a]):
        then = sim.simulate(hot[:at + 1], policy, spec, initial=initial)["tables"]
        assert np.array_equal(exports.replay(init, back, at), exports.physical_to_logical(then))
    assert np.array_equal(exports.replay(init, back, -1), init)
