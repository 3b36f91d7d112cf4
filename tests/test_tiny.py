import numpy as np
import pytest
import torch

from moelab import corpus, tiny, windows

SMALL = dict(vocab_size=300, hidden_size=32, intermediate_size=16, num_layers=2, num_heads=2, num_experts=8,
             top_k=2, router_aux_loss_coef=0.01, seq_len=32, batch_size=4, steps=4, lr=0.003, warmup=1, eval_every=2,
             eval_batches=1)


def test_spec_checks_its_values():
    with pytest.raises(ValueError, match="top_k=9 exceeds"):
        tiny.TinySpec.from_config({**SMALL, "num_experts": 8, "top_k": 9})
    with pytest.raises(ValueError, match="not divisible"):
        tiny.TinySpec.from_config({**SMALL, "hidden_size": 30, "num_heads": 4})
    with pytest.raises(ValueError, match="tiny.warmup=10 must be below tiny.steps=10"):
        tiny.TinySpec.from_config({**SMALL, "steps": 10, "warmup": 10})
    with pytest.raises(ValueError, match=r"tiny: missing keys \['lr'\]"):
        tiny.TinySpec.from_config({k: v for k, v in SMALL.items() if k != "lr"})


def test_tokenizer_and_training_are_reproducible(tmp_path):
    torch.set_num_threads(1)
    c = corpus.build(("prose", "code"), max_chars=8000, doc_chars=800, heldout=0.25, seed=0)
    texts = c.filter(c["part"] == "train")["text"].to_list()
    tiny.train_tokenizer(texts, 300, tmp_path / "a")
    tiny.train_tokenizer(texts, 300, tmp_path / "b")
    assert (tmp_path / "a/tokenizer.json").read_bytes() == (tmp_path / "b/tokenizer.json").read_bytes()
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tmp_path / "a")
    spec = tiny.TinySpec.from_config(SMALL)
    tr, ev = windows.token_ids(c, tok, "train"), windows.token_ids(c, tok, "heldout")
    runs = []
    for _ in range(2):
        m = tiny.build_model(spec, tok, seed=3)
        assert m.config.num_experts == 8 and m.config.num_experts_per_tok == 2
        curve = tiny.train(m, tr, ev, spec, seed=3, log=lambda s: None)
        runs.append((curve, {k: v.clone() for k, v in m.state_dict().items()}))
    (c1, w1), (c2, w2) = runs
    assert c1.equals(c2)
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    assert c1["step"].to_list() == [0, 1, 2, 3, 4]
    assert np.isfinite(c1.drop_nulls("eval_loss")["eval_loss"].to_numpy()).all()
    assert c1["eval_loss"][0] > c1["eval_loss"][-1], "training lowers the held-out loss"


def test_the_tiny_checkpoint_and_the_routing_study_share_one_shape_check():
    from moelab.routing.study import StudySpec

    with pytest.raises(ValueError, match=r"tiny.hidden_size=30 is not divisible by tiny.num_heads=4"):
        tiny.TinySpec.from_config({**SMALL, "hidden_size": 30, "num_heads": 4})
    with pytest.raises(ValueError, match=r"^dim=30 is not divisible by heads=4"):
        StudySpec(dim=30, heads=4)
    assert tiny.TinySpec.from_config(SMALL).shape.dim == SMALL["hidden_size"]
