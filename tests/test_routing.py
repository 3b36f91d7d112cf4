"""moelab.routing: capacity and drops, every router on hand-made logits, the balancing loss and the bias
balancer, causal evaluation, the capacity sweep and the training study's bookkeeping."""

import math

import numpy as np
import polars as pl
import pytest
import torch

from moelab import traces
from moelab.routing import capacity_sweep as cs
from moelab.routing.spec import CapacitySpec
from moelab.routing.dispatch import (assign, capacity, combine, combine_loop, drop_metrics, pack, pack_loop,
                                     slots_numpy)
from moelab.model_shape import ModelShape
from moelab.routing.model import TinyMoELM
from moelab.routing.names import STRATEGIES
from moelab.routing.routers import Router, balancing_loss
from moelab.routing import significance as rsig
from moelab.routing.study import StudySpec, token_type
from moelab.synthetic.scenarios import Scenario, StreamSpec, SyntheticSpec, generate


def logit_router(strategy, E, k, **kw):
    """A linear router whose logits are its input (identity weights): hand-made logits go straight in."""
    r = Router(E, E, k, strategy, "linear", **kw)
    if hasattr(r, "scorer"):
        with torch.no_grad():
            r.scorer.weight.copy_(torch.eye(E))
    return r.eval()


# ---- capacity and drops -------------------------------------------------------------------------------------

def test_capacity_formula_and_float_noise():
    assert capacity(1.0, 10, 2, 4) == 5
    assert capacity(1.25, 8, 1, 4) == 3  # ceil(2.5)
    assert capacity(1.1, 100, 1, 10) == 11  # 1.1 * 100 / 10 is 11.000000000000002 in floating point
    with pytest.raises(ValueError, match="capacity_factor"):
        capacity(0, 10, 1, 2)


def test_exact_drops_and_renormalised_combine():
    experts = torch.tensor([[0, 1], [0, 2], [0, 1], [3, 0]])
    weights = torch.tensor([[0.6, 0.4], [0.7, 0.3], [0.8, 0.2], [0.5, 0.5]])
    a = assign(experts, weights, 4, cap=2)
    # expert 0 is requested by tokens 0, 1, 2, 3 in that order: tokens 2 and 3 lose it
    assert a.slot.tolist() == [[0, 0], [1, 0], [2, 1], [0, 3]]
    assert a.keep.tolist() == [[True, True], [True, True], [False, True], [True, False]]
    assert a.drop_rate == pytest.approx(2 / 8) and a.token_drop_rate == 0
    # kept weights rescaled to what the token requested (here 1): token 2 keeps expert 1 at weight 1
    assert torch.allclose(a.combine_weights[2], torch.tensor([0.0, 1.0]))
    assert torch.allclose(a.combine_weights[3], torch.tensor([1.0, 0.0]))
    assert a.kept_loads().tolist() == [2, 2, 1, 1]
    slot = slots_numpy(experts.numpy(), 4)
    assert (slot == a.slot.numpy()).all()
    assert drop_metrics(slot, 2) == {"drop_rate": 0.25, "token_drop_rate": 0.0}
    assert drop_metrics(slot, 1)["token_drop_rate"] == 0.25  # token 2: both choices arrive second


def test_pack_and_combine_match_the_per_expert_loop():
    g = torch.Generator().manual_seed(0)
    T, E, k, d = 200, 16, 4, 8
    experts = torch.stack([torch.randperm(E, generator=g)[:k] for _ in range(T)])
    weights = torch.softmax(torch.randn(T, k, generator=g), dim=1)
    x = torch.randn(T, d, generator=g)
    for cf in (0.5, 1.0, 2.0):
        a = assign(experts, weights, E, capacity(cf, T, k, E))
        buf = pack(x, a)
        assert torch.equal(buf, pack_loop(x, a))
        y = torch.randn(buf.shape, generator=g)
        assert torch.allclose(combine(y, a), combine_loop(y, a), atol=1e-6)
        # identity experts give back each token scaled by its kept weight (its requested total or 0)
        kept = a.combine_weights.sum(1, keepdim=True)
        assert torch.allclose(combine(buf, a), x * kept, atol=1e-6)


def test_pack_and_combine_gradients_match_the_loop():
    g = torch.Generator().manual_seed(1)
    T, E, k, d = 64, 8, 2, 4
    experts = torch.stack([torch.randperm(E, generator=g)[:k] for _ in range(T)])
    x0, w0 = torch.randn(T, d, generator=g), torch.softmax(torch.randn(T, k, generator=g), 1)
    scale = torch.randn(E, 1, d, generator=g)
    grads = []
    for p, c in ((pack, combine), (pack_loop, combine_loop)):
        x, w = x0.clone().requires_grad_(), w0.clone().requires_grad_()
        a = assign(experts, w, E, capacity(0.75, T, k, E))  # some pairs dropped
        (c(p(x, a) * scale, a) ** 2).sum().backward()
        grads.append((x.grad, w.grad))
    assert torch.allclose(grads[0][0], grads[1][0], atol=1e-5)
    assert torch.allclose(grads[0][1], grads[1][1], atol=1e-5)


# ---- routers on hand-made logits ---------------------------------------------------------------------------

LOGITS = torch.tensor([[2.0, 1.0, 0.0, -1.0], [0.0, 3.0, 1.0, 0.0], [0.0, 2.5, 0.0, 0.5]])


def test_top1_selects_argmax_with_its_probability_and_drops_at_capacity():
    r = logit_router("top1", 4, 2)  # top-1 ignores k
    out = r(LOGITS, capacity_factor=1.0)  # capacity ceil(3 * 1 / 4) = 1
    assert out.experts.tolist() == [[0], [1], [1]]
    p = torch.softmax(LOGITS, 1)
    assert torch.allclose(out.weights[:, 0], p[torch.arange(3), out.experts[:, 0]])
    assert out.assignment.keep.tolist() == [[True], [True], [False]]
    assert out.drop_rate == pytest.approx(1 / 3) and out.token_drop_rate == pytest.approx(1 / 3)
    # Switch semantics kept: the combine weight is the gate probability, so the router gets a gradient
    assert torch.allclose(out.assignment.combine_weights[:2, 0], out.weights[:2, 0])


def test_topk_hard_and_softk_selections_and_weights():
    hard = logit_router("topk_hard", 4, 2)(LOGITS, 2.0)
    soft = logit_router("softk", 4, 2)(LOGITS, 2.0)
    assert hard.experts.tolist() == soft.experts.tolist() == [[0, 1], [1, 2], [1, 3]]
    assert torch.allclose(hard.weights, torch.full((3, 2), 0.5))
    assert torch.allclose(soft.weights[0], torch.softmax(torch.tensor([2.0, 1.0]), 0))
    assert hard.drop_rate == 0 and soft.aux_loss > 0


def test_noisy_topk_is_clean_in_eval_and_noisy_in_training():
    r = logit_router("noisy_topk", 4, 2)
    x = LOGITS.repeat(50, 1)
    assert r(x, 4.0).experts.tolist() == logit_router("softk", 4, 2)(x, 4.0).experts.tolist()
    r.train()
    torch.manual_seed(0)
    noisy = r(x, 4.0).experts
    assert not torch.equal(noisy, r.eval()(x, 4.0).experts)


def test_hash_routes_by_token_id_and_position_variant_by_position():
    r = Router(8, 8, 2, "hash", vocab_size=50, seed=3)
    ids = torch.tensor([5, 7, 5, 9])
    out = r(torch.zeros(4, 8), 2.0, token_ids=ids)
    assert torch.equal(out.experts[0], out.experts[2])  # same token, same experts
    assert all(len(set(row)) == 2 for row in out.experts.tolist())
    assert out.entropy() == pytest.approx(math.log(2))
    with pytest.raises(ValueError, match="token_ids"):
        r(torch.zeros(4, 8), 2.0)
    p = Router(8, 8, 2, "hash_position")
    out = p(torch.zeros(3, 8), 2.0, positions=torch.tensor([0, 7, 3]))
    assert out.experts.tolist() == [[0, 1], [7, 0], [3, 4]]


def test_expert_choice_takes_each_experts_top_tokens():
    r = logit_router("expert_choice", 2, 1).train()
    logits = torch.tensor([[3.0, 0.0], [2.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    out = r(logits, 1.0)  # capacity ceil(4 * 1 / 2) = 2 tokens per expert
    chosen = out.assignment.keep
    p = torch.softmax(logits, 1)
    assert chosen[:, 0].tolist() == [True, True, False, False]  # expert 0's two highest scores
    top1 = torch.topk(p[:, 1], 2).indices.tolist()
    assert sorted(top1) == sorted(torch.nonzero(chosen[:, 1]).flatten().tolist())
    assert torch.allclose(out.assignment.combine_weights, p * chosen)
    assert not torch.isnan(r.threshold).any()  # thresholds learned for causal evaluation
    # token 3 asked for expert 0 first, which took tokens 0 and 1: its request was not served
    assert out.drop_rate == pytest.approx(1 / 4)


def test_expert_choice_needs_thresholds_before_causal_evaluation():
    r = logit_router("expert_choice", 2, 1)
    with pytest.raises(RuntimeError, match="thresholds"):
        r(LOGITS[:, :2], 1.0)
    r.batch_eval = True
    assert r(LOGITS[:, :2], 1.0).assignment.keep.any()


def test_aux_free_bias_changes_the_selection_not_the_weights():
    r = logit_router("aux_free", 4, 1)
    x = torch.tensor([[1.0, 0.9, 0.0, 0.0]])
    assert r(x, 4.0).experts.item() == 0
    r.bias[1] = 0.5
    out = r(x, 4.0)
    assert out.experts.item() == 1 and out.weights.item() == pytest.approx(1.0)


def test_unknown_strategy_and_arch_are_refused():
    with pytest.raises(ValueError, match="strategy"):
        Router(4, 4, 1, "random")
    with pytest.raises(ValueError, match="arch"):
        Router(4, 4, 1, "softk", "transformer")
    with pytest.raises(ValueError, match="vocab_size"):
        Router(4, 4, 1, "hash")


@pytest.mark.parametrize("arch", ["linear", "mlp", "mlp_hadamard"])
def test_router_architectures_route(arch):
    r = Router(16, 8, 2, "softk", arch)
    out = r(torch.randn(32, 16), 1.25)
    assert out.experts.shape == (32, 2) and out.probs.shape == (32, 8)
    out.aux_loss.backward()
    assert all(p.grad is not None for p in r.parameters())


# ---- balancing --------------------------------------------------------------------------------------------

def test_balancing_loss_has_a_gradient_and_one_step_reduces_imbalance():
    torch.manual_seed(0)
    r = Router(16, 8, 2, "softk").train()
    with torch.no_grad():
        r.scorer.weight[0] += 0.2  # skew: expert 0 preferred by tokens with positive features
    x = torch.randn(512, 16).abs()

    def imbalance():
        out = r(x, 8.0)
        loads = out.requested_loads().float()
        return float(loads.std() / loads.mean()), out

    before, out = imbalance()
    assert balancing_loss(out.probs, out.experts).requires_grad
    opt = torch.optim.SGD(r.parameters(), lr=0.5)
    out.aux_loss.backward()
    opt.step()
    after, _ = imbalance()
    assert after < before


def test_bias_balancer_reduces_imbalance_on_a_skewed_stream():
    torch.manual_seed(0)
    r = Router(16, 8, 2, "aux_free", bias_rate=0.01).train()
    with torch.no_grad():
        r.scorer.weight[0] += 1.0
    stream = [torch.randn(256, 16).abs() for _ in range(200)]

    def cv(out):
        loads = out.requested_loads().float()
        return float(loads.std() / loads.mean())

    first = cv(r(stream[0], 8.0))
    for x in stream[1:]:
        last = r(x, 8.0)
    assert cv(last) < 0.5 * first
    assert r.bias[0] < 0  # the overloaded expert was pushed down


def test_entropy_is_of_the_full_distribution():
    r = logit_router("topk_hard", 4, 2)
    out = r(torch.zeros(5, 4), 2.0)
    assert out.entropy() == pytest.approx(math.log(4))  # hard routing, yet the router's distribution is flat


# ---- causal evaluation ------------------------------------------------------------------------------------

@pytest.mark.parametrize("strategy", STRATEGIES)
def test_evaluation_is_causal_for_every_strategy(strategy):
    """Changing the last position of every sequence changes nothing at earlier positions (capacity slots go
    position-major, expert choice routes by thresholds in eval mode)."""
    torch.manual_seed(0)
    m = TinyMoELM(ModelShape(vocab_size=32, dim=16, ffn=16, layers=2, heads=2, num_experts=4, top_k=2,
                             seq_len=12), strategy, seed=1)
    ids = torch.randint(0, 32, (6, 12))
    m.train()
    m.loss(ids, 1.0, 0.01)  # one training batch: expert choice learns its thresholds
    m.eval()
    with torch.no_grad():
        a, _ = m(ids, 1.0)
        changed = ids.clone()
        changed[:, -1] = (changed[:, -1] + 1) % 32
        b, _ = m(changed, 1.0)
    assert torch.allclose(a[:, :-1], b[:, :-1], atol=1e-6)


def test_batch_expert_choice_leaks_the_future():
    """The leaky batch routing the study reports beside the causal one: a later token can take an earlier
    token's slot."""
    r = logit_router("expert_choice", 2, 1)
    r.batch_eval = True
    early = r(torch.tensor([[2.0, 0.0], [0.0, 0.0]]), 0.5).assignment.keep  # capacity 1
    late = r(torch.tensor([[2.0, 0.0], [5.0, 0.0]]), 0.5).assignment.keep
    assert early[0, 0] and not late[0, 0]


# ---- capacity sweep ----------------------------------------------------------------------------------------

def test_gaussian_experts_are_distinct_and_strongest_first():
    ex = cs.gaussian_experts(16, 4, 100, seed=1, draw=0)
    assert ex.shape == (100, 4) and all(len(set(r)) == 4 for r in ex.tolist())
    again = cs.gaussian_experts(16, 4, 100, seed=1, draw=0)
    assert (ex == again).all()
    rng = np.random.default_rng([1, 16, 4, 0])
    logits = rng.standard_normal((100, 16), dtype=np.float32)
    assert (np.take_along_axis(logits, ex, 1)[:, :-1] >= np.take_along_axis(logits, ex, 1)[:, 1:]).all()


def test_gaussian_sweep_drops_fall_with_capacity():
    f = cs.gaussian_sweep([32], [1, 2], [0.9, 1.0, 1.5, 3.0], 512, 2, seed=3)
    assert f.height == 2 * 2 * 4
    for (k, d), sub in f.group_by("top_k", "batch"):
        rates = sub.sort("capacity_factor").get_column("drop_rate").to_list()
        assert rates == sorted(rates, reverse=True) and rates[-1] == 0.0


def make_trace(tmp_path, **sc):
    spec = SyntheticSpec(Scenario(**sc), 16, 4, StreamSpec(16, 32, 2, 4, 20), 4096, seed=2)
    meta, table, _ = generate(spec)
    path = tmp_path / "t.parquet"
    traces.write_trace(path, meta, table)
    return traces.read_trace(path)


def test_trace_sweep_batches_and_prefixes(tmp_path):
    t = make_trace(tmp_path, kind="powerlaw", alpha=1.2)
    assert not cs.weights_distinct(t) and cs.trace_top_ks(t, [1, 2]) == [4]  # 1/k weights: no prefixes
    spec = CapacitySpec.from_config({"factors": [1.0, 2.0], "batch_tokens": 64, "gaussian": None, "traces": ["syn"],
                                     "top_k": [1, 2], "max_batches": 3, "hidden": 8, "warmup": 1, "iters": 1})
    drops, cases = cs.sweep("syn", t, spec, seed=1)
    assert drops.height == 2 * 3 * 2  # layers x batches x factors
    assert set(drops.get_column("tokens")) == {64}
    assert [c[2].shape for c in cases] == [(64, 4)]
    layer0 = t.experts_by_layer()[64:128, 0, :]  # batch 1 of layer 0, recomputed by hand
    want = drop_metrics(slots_numpy(layer0, 16), capacity(1.0, 64, 4, 16))["drop_rate"]
    got = drops.filter((pl.col("layer") == 0) & (pl.col("batch") == 1) & (pl.col("capacity_factor") == 1.0))
    assert got.get_column("drop_rate").item() == pytest.approx(want)
    with pytest.raises(cs.SweepError, match="batch_tokens"):
        list(cs.trace_batches(t, 8, 1))


def test_trace_with_distinct_weights_sweeps_prefixes(tmp_path):
    t = make_trace(tmp_path, kind="random")  # gaussian logits -> softmax weights, strongest first
    assert cs.weights_distinct(t) and cs.trace_top_ks(t, [1, 2, 8]) == [1, 2, 4]


# ---- training study ---------------------------------------------------------------------------------------

def test_token_types():
    assert [token_type(s) for s in [" ", "\n", ",", "a", " the", "7", "é", ""]] == [
        "whitespace", "whitespace", "punctuation", "letter", "letter", "digit", "other", "whitespace"]


def test_study_spec_refuses_bad_values():
    with pytest.raises(ValueError, match="strategies"):
        StudySpec(strategies=("top1", "magic"))
    with pytest.raises(ValueError, match="top_k"):
        StudySpec(num_experts=2, top_k=3)
    with pytest.raises(ValueError, match="unknown keys"):
        StudySpec.from_config({"experts": 8})


def _seeds(values: dict[str, list[float]], cf: float = 1.0, study: str = "base") -> pl.DataFrame:
    return pl.DataFrame([{"study": study, "strategy": s, "capacity_factor": cf, "seed": i, "val_ppl": v}
                         for s, vals in values.items() for i, v in enumerate(vals)])


def test_holm_matches_a_hand_computed_case():
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.02 0.03 0.06 0.06
    assert rsig.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert rsig.holm([0.5, None, 0.4]) == [pytest.approx(0.8), None, pytest.approx(0.8)]  # None: not in family
    assert rsig.holm([0.9, 0.6]) == [1.0, 1.0]  # capped at 1


def test_significance_welch_and_holm_on_a_planted_difference():
    rng = np.random.default_rng(1)
    m = pl.concat([_seeds({"a": list(10 + 0.1 * rng.standard_normal(3)), "b": list(10 + 0.5 * rng.standard_normal(3)),
                           "c": list(13 + 0.1 * rng.standard_normal(3))}, cf) for cf in (1.0, 1.25)])
    sig = rsig.significance(m)
    assert sig.height == 6 and rsig.family_size(sig) == 6
    row = {(r["capacity_factor"], r["strategy_a"], r["strategy_b"]): r for r in sig.to_dicts()}
    for cf in (1.0, 1.25):
        assert row[(cf, "a", "c")]["significant"] and row[(cf, "b", "c")]["significant"]
    assert set(sig.get_column("strategy_b").filter(sig.get_column("significant"))) == {"c"}
    # Holm over the whole table (both CFs: one family of 6), not per CF
    assert sig.get_column("p_holm").to_list() == pytest.approx(rsig.holm(sig.get_column("p_value").to_list()))
    # Welch (unequal variances), by hand: t and the Welch-Satterthwaite degrees of freedom
    r = sig.row(0, named=True)
    va, vb = r["std_a"] ** 2 / 3, r["std_b"] ** 2 / 3
    t = r["diff"] / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 2)
    from scipy import stats
    assert r["p_value"] == pytest.approx(2 * stats.t.sf(t, df))
    assert set(sig.get_column("test")) == {"Welch t"} and set(sig.get_column("alpha")) == {0.05}
    # the exact permutation p at 3 vs 3 seeds cannot go below 2/20 (so it does not decide)
    assert row[(1.0, "a", "c")]["p_permutation"] == pytest.approx(0.1)
    assert (sig.get_column("p_permutation") >= 0.1 - 1e-12).all()


def test_significance_finds_nothing_in_pure_noise():
    # one normal for all 8 strategies x 3 seeds; Holm holds the chance of any false pair to 5%, and this seed's
    # draw has several uncorrected p < 0.05, so the test fails if the correction is missing or too weak
    rng = np.random.default_rng(7)
    m = _seeds({f"s{i}": list(10 + rng.standard_normal(3)) for i in range(8)})
    sig = rsig.significance(m)
    assert sig.height == 28 and rsig.family_size(sig) == 28
    assert (sig.get_column("p_value") < 0.05).sum() >= 3  # uncorrected, some of the 28 noise pairs "differ"...
    assert not sig.get_column("significant").any()  # ...but none survives Holm


def test_significance_leaves_a_one_seed_pair_untested():
    m = _seeds({"a": [10.0, 10.1, 9.9], "b": [12.0], "c": [12.0, 12.1, 11.9]})
    sig = rsig.significance(m)
    row = {(r["strategy_a"], r["strategy_b"]): r for r in sig.to_dicts()}
    for pair in (("a", "b"), ("b", "c")):
        assert row[pair]["p_value"] is None and row[pair]["p_holm"] is None
        assert row[pair]["significant"] is False and "fewer than 2 seeds" in row[pair]["note"]
        assert row[pair]["n_b" if pair[1] == "b" else "n_a"] == 1
    assert row[("a", "c")]["p_value"] is not None and row[("a", "c")]["note"] == ""
    assert rsig.family_size(sig) == 1  # only the tested pair: Holm leaves its p as it is
    assert row[("a", "c")]["p_holm"] == pytest.approx(row[("a", "c")]["p_value"])
    assert "1 tested pairs" in rsig.title(sig) and "2 pair(s) untested" in rsig.title(sig)


def test_significance_title_names_the_test_and_the_top1_compute():
    m = _seeds({"top1": [10.0, 10.2, 9.9], "softk": [9.0, 9.1, 8.8], "hash": [11.0, 11.3, 11.1]})
    sig = rsig.significance(m)
    t = rsig.title(sig)
    assert "Welch" in t and "Holm" in t and "3 tested pairs" in t and "0.05" in t
    note = rsig.compute_note(sig, {"base": 2})
    assert "half the expert FLOPs" in note and "'base'" in note
    assert "1/4 of the expert FLOPs" in rsig.compute_note(sig, {"base": 4})
    assert rsig.compute_note(sig, {"base": 1}) == ""  # k = 1: every strategy is top-1
    assert rsig.compute_note(sig.filter(pl.col("strategy_a") != "top1", pl.col("strategy_b") != "top1"),
                             {"base": 2}) == ""  # no top1 pair in the table


def test_two_step_training_is_deterministic():
    from moelab.routing.study import run_strategy

    class Toks:
        vocab_size = 256
        rng = np.random.default_rng(0)
        ids = {"train": rng.integers(0, 256, 5000), "heldout": rng.integers(0, 256, 2000)}
        types = np.array([0, 1, 2, 3, 4] * 51 + [0])

    spec = StudySpec(capacity_factors=(1.0,), seeds=2, num_experts=4, dim=16, ffn=16, layers=1, heads=2,
                     seq_len=16, batch_size=4, steps=2, warmup=1, eval_every=1, eval_batches=1, heatmap_tokens=8)
    a = run_strategy(Toks(), spec, "expert_choice", seed=5, progress=lambda s: None)
    b = run_strategy(Toks(), spec, "expert_choice", seed=5, progress=lambda s: None)
    for name in ("metrics", "curves", "loads", "preference", "heatmap"):
        assert a[name].equals(b[name]), name
    assert a["metrics"].get_column("val_ppl_batch").null_count() == 0
    assert a["heatmap"].height == 1 * 8 * 4  # layers x tokens x experts, seed 0 only
