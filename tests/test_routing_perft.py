"""moelab.routing.perft: every variant trains only its adapters (and PERFT-R's router), the base stays
bit-identical, PERFT-E follows the base router, and a two-step run goes end to end on real tiny checkpoints."""

import numpy as np
import polars as pl
import pytest
import torch

from moelab.capture import load
from moelab.routing import perft
from moelab.routing.spec import PerftSpec
from moelab.spec import ConfigError

from tiny_models import save_model

VARIANTS = [perft.Variant("S", 4), perft.Variant("D", 4, adapters=3), perft.Variant("R", 4, adapters=4, top_k=2),
            perft.Variant("E", 4)]


@pytest.fixture(scope="module", params=["olmoe", "mixtral", "qwen3_moe"])
def checkpoint(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(request.param)
    return str(save_model(request.param, d / "model", d / "tok"))


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_only_adapters_train_and_the_base_stays_bit_identical(checkpoint, variant):
    model, _ = load(checkpoint)
    model.train()
    state = perft.base_state(model)
    params = perft.attach(model, variant)
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert names and all(".adapters." in n or ".router." in n for n in names)
    assert (".router." in " ".join(names)) == (variant.kind == "R")
    x = torch.randint(0, model.config.vocab_size, (2, 12))
    before = model(input_ids=x).logits.detach()
    opt = torch.optim.AdamW(params, lr=1e-2)
    for _ in range(2):
        model(input_ids=x, labels=x).loss.backward()
        opt.step()
        opt.zero_grad()
    assert perft.base_changed(state) == []
    assert not torch.allclose(model(input_ids=x).logits, before)  # the adapters did learn something


def test_untrained_adapters_leave_the_base_output_unchanged(checkpoint):
    model, _ = load(checkpoint)
    x = torch.randint(0, model.config.vocab_size, (2, 10))
    with torch.no_grad():
        ref = model(input_ids=x).logits
        perft.attach(model, perft.Variant("R", 4, adapters=4, top_k=1))
        assert torch.equal(model(input_ids=x).logits, ref)  # up starts at zero


def test_embedded_adapters_follow_the_base_router(checkpoint):
    model, _ = load(checkpoint)
    perft.attach(model, perft.Variant("E", 2))
    block = next(m for m in model.modules() if isinstance(m, perft.PerftBlock))
    E = block.base.gate.num_experts
    assert block.adapters.n == E
    with torch.no_grad():
        block.adapters.up.normal_()
        x = torch.randn(5, model.config.hidden_size)
        _, scores, idx = block.base.gate(x)
        got = block(x.unsqueeze(0))[0] - block.base(x.unsqueeze(0))[0]
        want = torch.zeros_like(x)
        r = block.adapters.rank
        for t in range(5):  # one adapter at a time, weighted by the base router's top-k weights
            for j in range(idx.shape[1]):
                e = int(idx[t, j])
                sl = slice(e * r, (e + 1) * r)
                want[t] += scores[t, j] * (x[t] @ block.adapters.down[:, sl]) @ block.adapters.up[sl]
    assert torch.allclose(got, want, atol=1e-5)


def test_bad_variants_are_refused():
    with pytest.raises(ValueError, match="kind"):
        perft.Variant("X", 8)
    with pytest.raises(ValueError, match="top_k"):
        perft.Variant("R", 8, adapters=2, top_k=3)
    base = dict(model="tiny", domain="auto", steps=1, batch_size=1, seq_len=8, lr=0.1, eval_every=1, eval_batches=1)
    with pytest.raises(ConfigError, match=r"routing.perft: variants\[1\]: PERFT-S: rank=0"):
        PerftSpec.from_config({**base, "variants": [{"kind": "S", "rank": 8}, {"kind": "S", "rank": 0}]})
    with pytest.raises(ConfigError, match=r"variants\[1\] repeats an earlier variant"):
        PerftSpec.from_config({**base, "variants": [{"kind": "S", "rank": 8}, {"kind": "S", "rank": 8}]})
    with pytest.raises(ConfigError, match=r"variants\[0\]: PERFT-D has every adapter active"):
        PerftSpec.from_config({**base, "variants": [{"kind": "D", "rank": 8, "top_k": 1}]})


def test_two_step_run_end_to_end(checkpoint):
    _, tok = load(checkpoint)
    text = ["the cat sat on the mat. " * 30, "a dog ran in the park! " * 30]
    corpus = pl.DataFrame({"doc": [0, 1, 2, 3], "domain": ["a", "a", "b", "b"], "source": ["x"] * 4,
                           "part": ["train", "heldout", "train", "heldout"], "text": text * 2})
    corpus = corpus.with_columns(pl.col("text").str.slice(0, pl.when(pl.col("domain") == "a").then(300)
                                                          .otherwise(700)))
    assert perft.least_seen_domain(corpus) == "a"
    data = perft.domain_tokens(corpus, tok, "a")
    cfg = PerftSpec.from_config({"model": "tiny", "domain": "a", "variants": [{"kind": "S", "rank": 4}], "steps": 2,
                                 "batch_size": 2, "seq_len": 8, "lr": 1e-2, "eval_every": 1, "eval_batches": 1})
    out = perft.run(lambda: load(checkpoint)[0].train(), VARIANTS[::3], data, cfg, seed=1, domain="a",
                    progress=lambda s: None)
    res = out["results"]
    assert res.get_column("variant").to_list() == ["base (frozen)", "PERFT-S r4", "PERFT-E r4"]
    assert res.get_column("trainable_params")[0] == 0 and (res.get_column("trainable_params")[1:] > 0).all()
    assert np.allclose(res.get_column("base_val_loss"), res.get_column("val_loss")[0])
    assert out["curves"].filter(pl.col("step") == 2).height == 2
    again = perft.run(lambda: load(checkpoint)[0].train(), VARIANTS[::3], data, cfg, seed=1, domain="a",
                      progress=lambda s: None)
    assert again["results"].equals(res)
    with pytest.raises(ValueError, match="no such domain"):
        perft.domain_tokens(corpus, tok, "c")
