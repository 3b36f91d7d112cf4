import numpy as np
import polars as pl
import pytest
import torch

from moelab import capture, corpus, traces

from tiny_models import FAMILIES, save_model

CONCURRENCY = 8


@pytest.fixture(scope="module")
def small_corpus():
    return corpus.build(("prose", "code", "legal"), max_chars=3000, doc_chars=600, heldout=0.2, seed=2)


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tok")


def run_capture(path, small_corpus, **kw):
    model, tok = capture.load(str(path))
    cap = capture.capture(model, tok, small_corpus, source_id="captured-x", concurrency=CONCURRENCY,
                          seq_len=kw.get("seq_len", 24), batch_size=kw.get("batch_size", 5), seed=1,
                          device="cpu", dtype="float32", max_iterations=kw.get("max_iterations", 30))
    return model, tok, cap


def gate_inputs(model, ids):
    """The hidden states each router sees for one request, via pre-hooks (independent of the recorder)."""
    seen = []
    layers = capture.moe_layers(model)
    hooks = [ml.gate.register_forward_pre_hook(lambda m, a: seen.append(a[0].reshape(-1, a[0].shape[-1])))
             for ml in layers]
    with torch.no_grad():
        model(input_ids=torch.as_tensor(ids)[None], use_cache=False)
    for h in hooks:
        h.remove()
    return layers, seen


@pytest.mark.parametrize("family", ["olmoe", "mixtral", "qwen2_moe", "qwen3_moe", "deepseek_v2"])
def test_softmax_topk_families_capture_the_top_k_of_the_router_logits(tmp_path, tok_dir, small_corpus, family):
    path = save_model(family, tmp_path / family, tok_dir)
    model, tok, cap = run_capture(path, small_corpus)
    table = cap.table()
    traces.validate_table(table, cap.meta)
    k = cap.meta.top_k
    assert cap.meta.num_experts == 8 and k == 2
    assert cap.meta.shared_experts == (1 if family in ("qwen2_moe", "deepseek_v2") else 0)
    if family == "deepseek_v2":
        assert cap.meta.layer_index == (1, 2), "the dense first layer is not an MoE layer"
    # Take one request's tokens from the stream and recompute its routing from the gate inputs.
    doc0, pos = cap.doc[0], cap.pos
    sel = np.flatnonzero((cap.doc == doc0) & (pos // 24 == pos[0] // 24))
    sel = sel[np.argsort(pos[sel])]
    ids = cap.token[sel]
    assert np.array_equal(pos[sel], np.arange(pos[sel][0], pos[sel][0] + sel.size))
    # the request starts at its chunk boundary, so its tokens are the chunk's prefix
    layers, seen = gate_inputs(model, ids.astype(np.int64))
    for j, (ml, h) in enumerate(zip(layers, seen, strict=True)):
        logits = (h.float() @ ml.gate.weight.float().T).detach().numpy()
        top = np.sort(np.argsort(-logits, 1)[:, :k], 1)
        assert np.array_equal(np.sort(cap.experts[sel, j], 1), top), f"layer {j}"


def test_deepseek_v3_capture_records_the_models_group_limited_biased_choice(tmp_path, tok_dir, small_corpus):
    path = save_model("deepseek_v3", tmp_path / "ds3", tok_dir)
    model, tok = capture.load(str(path))
    layers = capture.moe_layers(model)
    assert [ml.decoder_index for ml in layers] == [1, 2] and capture.shared_experts(model.config) == 1
    with torch.no_grad():  # a score-correction bias that plain top-k would ignore
        for ml in layers:
            ml.gate.e_score_correction_bias.copy_(torch.linspace(0.6, -0.6, 16))
    ids = np.asarray(tok(small_corpus["text"][0], add_special_tokens=False)["input_ids"][:48])
    received = []  # what each experts module was handed: the model's actual choice
    hooks = [model.model.layers[ml.decoder_index].mlp.experts.register_forward_pre_hook(
        lambda m, a: received.append(a[1].detach().numpy().copy())) for ml in layers]
    ex, _, _ = capture.run_requests(model, layers, [ids], batch_size=1, device="cpu", pad_id=0, progress=False)
    for h in hooks:
        h.remove()
    _, seen = gate_inputs(model, ids)
    for j, ml in enumerate(layers):
        got = np.sort(ex[0][:, j], 1)
        assert np.array_equal(got, np.sort(received[j], 1)), f"layer {j}: not the model's choice"
        assert max(len(set(row)) for row in got // 4) <= 2, "group limit (topk_group=2 of 4) broken"
        plain = np.sort(np.argsort(-(seen[j].float() @ ml.gate.weight.float().T).detach().numpy(), 1)[:, :4], 1)
        assert (plain != got).any(axis=1).mean() > 0.2, "the bias should change the choice of many tokens"
    # and the same holds through the whole capture path
    cap = capture.capture(model, tok, small_corpus, source_id="captured-ds3", concurrency=CONCURRENCY,
                          seq_len=24, batch_size=64, seed=1, device="cpu", dtype="float32", max_iterations=30)
    assert cap.meta.shared_experts == 1 and cap.meta.top_k == 4
    assert max(len(set(row)) for row in (cap.experts.astype(int) // 4).reshape(-1, 4)) <= 2


def test_capture_numbers_tokens_by_replaying_the_scheduler(tmp_path, tok_dir, small_corpus):
    path = save_model("olmoe", tmp_path / "m", tok_dir)
    model, tok, cap = run_capture(path, small_corpus, max_iterations=20)
    assert cap.stream.n_tokens == 20 * CONCURRENCY
    # token ids at (doc, pos) are the document's own tokens
    texts = dict(zip(small_corpus["doc"].to_list(), small_corpus["text"].to_list(), strict=True))
    for i in range(0, cap.stream.n_tokens, 17):
        ids = tok(texts[int(cap.doc[i])], add_special_tokens=False)["input_ids"]
        assert ids[cap.pos[i]] == cap.token[i]
    # split: the second half of each document is the test split
    f = pl.DataFrame({"doc": cap.doc, "pos": cap.pos, "test": cap.is_test})
    assert f.filter(pl.col("pos") == 0)["test"].sum() == 0
    assert len(set(cap.doc[:CONCURRENCY].tolist())) > 1, "one iteration mixes documents"


def test_capture_is_deterministic_and_batching_does_not_change_routing(tmp_path, tok_dir, small_corpus):
    path = save_model("qwen3_moe", tmp_path / "m", tok_dir)
    _, _, a = run_capture(path, small_corpus, batch_size=5)
    _, _, b = run_capture(path, small_corpus, batch_size=5)
    _, _, c = run_capture(path, small_corpus, batch_size=1)
    assert a.table().equals(b.table())
    assert np.array_equal(a.experts, c.experts), "a causal model's routing must not depend on its batch"
    np.testing.assert_allclose(a.weights, c.weights, rtol=1e-4, atol=1e-5)


def test_proxy_keeps_the_stream_and_changes_the_routing(tmp_path, tok_dir, small_corpus):
    path = save_model("olmoe", tmp_path / "m", tok_dir)
    model, _, cap = run_capture(path, small_corpus)
    traces.write_trace(tmp_path / "c.parquet", cap.meta, cap.table())
    tr = traces.read_trace(tmp_path / "c.parquet")
    meta, table = capture.proxy_trace(tr, model, 5, "proxy-m")
    traces.write_trace(tmp_path / "p.parquet", meta, table)
    p = traces.read_trace(tmp_path / "p.parquet")
    assert p.meta.source_kind == "proxy"
    assert p.frame.select("t", "doc", "pos", "token").equals(tr.frame.select("t", "doc", "pos", "token"))
    assert not np.array_equal(p.experts(), tr.experts())


def test_missing_checkpoint_says_how_to_provide_it(tmp_path):
    with pytest.raises(capture.CaptureError, match="not found.*local folder"):
        capture.load(str(tmp_path / "no-such-model"))
    with pytest.raises(capture.CaptureError, match="Hugging Face cache"):
        capture.load("no-such-org/no-such-model")


def test_non_moe_model_is_refused(tmp_path, tok_dir):
    path = save_model("llama", tmp_path / "llama", tok_dir)
    with pytest.raises(capture.CaptureError, match="not a Mixture-of-Experts model"):
        capture.load(str(path))


def test_sort_topk_follows_the_contract():
    ids = np.array([[3, 1, 2]])
    w = np.array([[0.2, 0.5, 0.2]], np.float32)
    i, v = capture.sort_topk(ids, w)
    assert i.tolist() == [[1, 2, 3]] and v[0].tolist() == pytest.approx([0.5, 0.2, 0.2])


def test_every_supported_family_is_tested():
    assert set(FAMILIES) == set(capture.SUPPORTED)


def test_domain_phases_arrival_moves_the_mix(tmp_path):
    """Requests arrive in runs of one domain (``phase_requests`` each), every request exactly once."""
    import polars as pl

    from tiny_models import tokenizer

    from moelab.capture import CaptureError, make_requests

    tok = tokenizer(tmp_path / "tok")
    texts = [f"{w} " * 200 for w in ("alpha", "beta", "gamma")]
    corpus = pl.DataFrame({"doc": list(range(9)), "domain": pl.Series(["a", "b", "c"] * 3, dtype=pl.Enum(["a", "b", "c"])),
                           "source": ["x"] * 9,
                           "part": ["train"] * 9, "text": texts * 3})
    shuffled, _ = make_requests(corpus, tok, 16, seed=1)
    phased, _ = make_requests(corpus, tok, 16, seed=1, arrival="domain_phases", phase_requests=4)
    key = lambda r: (r.doc, r.offset)  # noqa: E731
    assert sorted(map(key, phased)) == sorted(map(key, shuffled))
    dom = {d: "abc"[d % 3] for d in range(9)}
    runs = [dom[r.doc] for r in phased]
    changes = sum(a != b for a, b in zip(runs, runs[1:]))
    assert all(len(set(runs[i:i + 4])) == 1 for i in (0, 4, 8))  # the first cycle: three phases of 4
    assert len(set(runs[:12])) == 3
    shuffled_changes = sum(dom[a.doc] != dom[b.doc] for a, b in zip(shuffled, shuffled[1:]))
    assert changes < shuffled_changes / 2
    with pytest.raises(CaptureError, match="arrival"):
        make_requests(corpus, tok, 16, seed=1, arrival="sorted")


# --- device maps: a checkpoint spread over devices -------------------------------------------------------------

def test_capture_through_a_device_map_gives_the_plain_routing(tmp_path, tok_dir, small_corpus):
    """accelerate's device-map path (hooks, offloaded weights, inputs to the embedding's device) on the CPU:
    the embedding in memory and the decoder layers offloaded to disk, by an explicit map and by ``auto``."""
    path = save_model("qwen3_moe", tmp_path / "m", tok_dir)
    plain_model, _, plain = run_capture(path, small_corpus, max_iterations=8)
    assert "model_devices" not in plain.meta.config
    size = sum(p.numel() * p.element_size() for p in plain_model.parameters())
    explicit = {"model.embed_tokens": "cpu", "model.rotary_emb": "cpu", "model.layers.0": "cpu",
                "model.layers.1": "disk", "model.norm": "cpu", "lm_head": "cpu"}
    plain_proxy = capture.proxy_routing(capture.moe_layers(plain_model), 64, 5, 32)
    for i, (device_map, kw) in enumerate([(explicit, {}), ("auto", {"max_memory": {"cpu": size // 2}})]):
        model, tok = capture.load(str(path), device_map=device_map, offload_folder=str(tmp_path / f"off{i}"), **kw)
        assert {"cpu", "disk"} <= set(model.hf_device_map.values()), model.hf_device_map
        assert str(capture.input_device(model)) == "cpu"
        cap = capture.capture(model, tok, small_corpus, source_id="captured-x", concurrency=CONCURRENCY,
                              seq_len=24, batch_size=5, seed=1, max_iterations=8)
        assert cap.meta.config["model_devices"] == ["cpu", "disk"] and cap.meta.capture_device == "cpu"
        assert np.array_equal(cap.experts, plain.experts), f"device_map={device_map!r}"
        np.testing.assert_allclose(cap.weights, plain.weights, rtol=1e-5, atol=1e-6)
        # the proxy's routers run where they live (offloaded ones through their hooks)
        ex, w = capture.proxy_routing(capture.moe_layers(model), 64, 5, 32)
        assert np.array_equal(ex, plain_proxy[0])


# --- config: where checkpoints come from, and the jobs they ask for --------------------------------------------

def capture_block(*models):
    return {"seq_len": 16, "batch_size": 2, "dtype": "float32", "device": "cpu", "parts": ["train"],
            "models": list(models), "proxy": []}


def test_a_hub_id_is_accepted_at_config_time_without_the_cache(tmp_path, monkeypatch):
    from moelab.capture_spec import CaptureSpec

    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    spec = CaptureSpec.from_config(capture_block(
        {"name": "olmoe", "path": "allenai/OLMoE-1B-7B-0924", "revision": "main"},
        {"name": "big", "path": "mistralai/Mixtral-8x7B-v0.1", "device_map": "auto", "gpus": 2, "mem_mb": 128000},
        {"name": "tiny", "path": "embedded:tiny"}))
    olmoe, big, tiny = spec.models
    assert (olmoe.source, big.source, tiny.source) == ("hub", "hub", "embedded")
    assert (olmoe.job_gpus, big.job_gpus, tiny.job_gpus) == (1, 2, 0)
    assert (olmoe.job_mem_mb, big.job_mem_mb) == (8000, 128000)
    assert spec.model("big")["device_map"] == "auto" and spec.model("olmoe")["revision"] == "main"
    # unset keys stay out of the parameters, so configs without them rerun nothing
    assert set(spec.model("tiny")) == {"name", "path", "dtype", "seq_len", "batch_size", "arrival", "phase_requests"}


@pytest.mark.parametrize("entry,message", [
    ({"path": "org/na me"}, "neither a local folder nor a well-formed hub id"),
    ({"path": "-org/name"}, "neither a local folder nor a well-formed hub id"),
    ({"path": "org/name/extra"}, "expected a folder with config.json"),
    ({"path": "./models/ckpt"}, "expected a folder with config.json"),
    ({"path": "embedded:tiny", "revision": "v1"}, "revision='v1' applies to hub ids only"),
    ({"path": "org/name", "gpus": 2}, "only with a device_map"),
    ({"path": "org/name", "gpus": 1, "device_map": {"model.layers.0": "cuda:1"}}, "GPU 1 is not among"),
    ({"path": "org/name", "device_map": "everywhere"}, "device_map='everywhere'"),
    ({"path": "org/name", "mem_mb": 0}, "mem_mb=0"),
])
def test_a_malformed_model_entry_errors_at_config_time(entry, message):
    from moelab.capture_spec import CaptureSpec
    from moelab.spec import ConfigError

    with pytest.raises(ConfigError, match=f"capture.models\\[0\\]: .*{message}"):
        CaptureSpec.from_config(capture_block({"name": "m", **entry}))


def test_the_dag_downloads_a_hub_checkpoint_before_capturing_it(tmp_path):
    """A dry run on a config naming an uncached hub id: no network, and the download job comes first."""
    import os
    import re
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1]
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=root, check=True,
                           capture_output=True, text=True).stdout.split("\n")
    project = tmp_path / "p"
    for f in (f for f in files if f and (root / f).is_file()):  # the project as a fresh clone holds it
        (project / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / f, project / f)
    cfg = yaml.safe_load((root / "config/test.yaml").read_text())
    cfg["capture"]["models"].append({"name": "hubm", "path": "moelab-test/not-cached", "device_map": "auto",
                                     "gpus": 2, "mem_mb": 1234})
    cfg["capture"]["proxy"].append("hubm")
    (project / "config/hub.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9",
           "PYTHONDONTWRITEBYTECODE": "1"}
    res = subprocess.run([str(Path(sys.executable).with_name("snakemake")), "--configfile", "config/hub.yaml", "-n",
                          "results/proxy/hubm/trace.parquet"], cwd=project, env=env, capture_output=True,
                         text=True, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    blocks = {b.split(":", 1)[0].split()[-1]: b for b in re.split(r"\n\[[^\n]*\]\n", out)
              if b.startswith(("rule ", "localrule "))}
    names = list(blocks)
    assert names.index("download_model") < names.index("capture") < names.index("proxy"), names
    assert "results/models/hub/hubm.json" in blocks["capture"] and "results/models/hub/hubm.json" in blocks["proxy"]
    for rule in ("capture", "proxy"):
        assert "gpu=2" in blocks[rule] and "mem_mb=1234" in blocks[rule], blocks[rule]
    assert not (project / "results").exists() and not (tmp_path / "hf").exists()
    # it runs where Snakemake runs (the Slurm login node, which has the network), never as a cluster job
    body = re.search(r"^rule download_model:\n(.*?)(?=^\S|\Z)", (root / "workflow/rules/capture.smk").read_text(),
                     re.S | re.M)[1]
    assert re.search(r"^    localrule: True$", body, re.M)
