import numpy as np
import pytest

from moelab import hotness, stats, traces
from moelab.synthetic.drift import Drift
from moelab.synthetic.scenarios import Scenario, StreamSpec, SyntheticSpec, generate

STREAM = StreamSpec(concurrency=32, iterations=64, layers=2, min_request=4, max_request=40)


def make(tmp_path, E=64, k=4, stream=STREAM, drift_model=Drift(), **sc):
    tmp_path.mkdir(parents=True, exist_ok=True)
    spec = SyntheticSpec(Scenario(**sc), E, k, stream, 4096, seed=11, drift=drift_model)
    meta, table, _ = generate(spec)
    path = tmp_path / f"{spec.trace_id}.parquet"
    traces.write_trace(path, meta, table)
    return traces.read_trace(path)


@pytest.mark.parametrize("E,k,factor", [(60, 4, 3.0), (256, 8, 3.0), (64, 8, 6.0)])
def test_imbalanced_hits_the_requested_factor(tmp_path, E, k, factor):
    tr = make(tmp_path, E=E, k=k, kind="imbalanced", imbalance_factor=factor)
    hot = hotness.from_trace(tr).sum(axis=0)
    realised = hot.max(axis=1) / hot.mean(axis=1)
    assert np.all(np.abs(realised / factor - 1) < 0.05), f"asked {factor}, got {realised}"


def test_scenarios_give_different_loads(tmp_path):
    loads = {}
    for sc in [dict(kind="balanced"), dict(kind="uniform"), dict(kind="powerlaw", alpha=1.2),
               dict(kind="random"), dict(kind="imbalanced", imbalance_factor=3.0)]:
        tr = make(tmp_path, **sc)
        loads[tr.meta.source_id] = stats.layer_table(hotness.from_trace(tr), 32, 4, [4])["max_mean"][0]
    assert loads["balanced-E64-k4"] == 1.0
    assert loads["powerlaw-alpha1.2-E64-k4"] > 5 * loads["uniform-E64-k4"]
    assert len(set(np.round(list(loads.values()), 6))) == len(loads)


def test_alpha_zero_is_perfectly_balanced(tmp_path):
    hot = hotness.from_trace(make(tmp_path, kind="powerlaw", alpha=0))
    assert (hot == hot[0, 0, 0]).all()


def test_reference_loads_repeat_one_deterministic_batch(tmp_path):
    hot = hotness.from_trace(make(tmp_path, kind="powerlaw", alpha=1.2, loads="reference"))
    assert (hot == hot[:1]).all()


def test_worst_case_ep_puts_the_heaviest_group_on_rank_zero(tmp_path):
    hot = hotness.from_trace(make(tmp_path, kind="powerlaw", alpha=1.2, worst_case_ep=8)).sum(axis=0)
    groups = hot.reshape(2, 8, 8).sum(axis=2)
    assert (groups.argmax(axis=1) == 0).all()


def test_drift_moves_popularity(tmp_path):
    d = Drift(phase_every=16, phases=2)
    hot = hotness.from_trace(make(tmp_path, kind="powerlaw", alpha=1.2, drift="p", drift_model=d))
    first, second = hot[:16, 0].sum(axis=0), hot[16:32, 0].sum(axis=0)
    assert np.corrcoef(first, second)[0, 1] < 0.5


def test_generation_is_deterministic(tmp_path):
    a = make(tmp_path / "a", kind="powerlaw", alpha=1.01)
    b = make(tmp_path / "b", kind="powerlaw", alpha=1.01)
    name = "powerlaw-alpha1.01-E64-k4.parquet"
    assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert a.frame.equals(b.frame)


def test_random_scenario_weights_are_softmax_sorted(tmp_path):
    tr = make(tmp_path, kind="random")
    w = tr.weights()
    np.testing.assert_allclose(w.sum(axis=1), 1, rtol=1e-5)
    assert (np.diff(w, axis=1) <= 0).all()


def test_reference_batch_with_worst_case_ep_spreads_excess_per_rank_then_swaps_the_heaviest_rank(tmp_path):
    """As the reference: the batch's loads are made on the unpermuted profile with the excess spread over the
    EP ranks, then the heaviest rank's experts (by those loads) are swapped onto rank 0."""
    from moelab.synthetic import loads as L
    from moelab.synthetic import powerlaw
    from moelab.synthetic.scenarios import _rng, layer_profiles

    sc = dict(kind="powerlaw", alpha=1.2, loads="reference", worst_case_ep=8)
    hot = hotness.from_trace(make(tmp_path, **sc))
    spec = SyntheticSpec(Scenario(**sc), 64, 4, STREAM, 4096, seed=11, drift=Drift())
    profiles = layer_profiles(spec, _rng(spec.seed, "routing", spec.trace_id))  # a static drift keeps them
    for layer, prof in enumerate(profiles):
        want = powerlaw.reference_batch_loads(prof, STREAM.concurrency, 4, ep=8)
        want = want[L.worst_case_ep_permutation(want, 8)]
        assert np.array_equal(hot[0, layer], want), layer
        assert hot[0, layer].reshape(8, 8).sum(1).argmax() == 0
