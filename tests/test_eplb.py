import numpy as np
import pytest

from moelab.placement import eplb

WEIGHT = np.array([[90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86],
                   [20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27]])
PUBLISHED = np.array([[5, 6, 5, 7, 8, 4, 3, 4, 10, 9, 10, 2, 0, 1, 11, 1],
                      [7, 10, 6, 8, 6, 11, 8, 9, 2, 4, 5, 1, 5, 0, 3, 1]])


def test_reproduces_the_published_example():
    phy2log, log2phy, logcnt = eplb.rebalance(WEIGHT, 16, 4, 2, 8)
    assert np.array_equal(phy2log, PUBLISHED)
    assert logcnt.sum(1).tolist() == [16, 16]


@pytest.mark.parametrize("args", [(16, 4, 2, 8), (16, 3, 2, 8), (24, 1, 1, 4), (12, 4, 2, 4)])
def test_invariants(args):
    rng = np.random.default_rng(sum(args))
    w = rng.integers(0, 300, size=(5, 12))
    P, G, N, D = args
    phy2log, log2phy, logcnt = eplb.rebalance(w, P, G, N, D)
    assert phy2log.shape == (5, P)
    for l in range(5):
        assert set(phy2log[l]) == set(range(12)), "every expert placed"
        assert np.array_equal(np.bincount(phy2log[l], minlength=12), logcnt[l])
        for e in range(12):
            slots = log2phy[l, e][log2phy[l, e] >= 0]
            assert len(slots) == logcnt[l, e] and (phy2log[l, slots] == e).all()
    assert (logcnt.sum(1) == P).all()
    assert (logcnt >= 1).all()


def test_replication_gives_copies_to_the_hottest():
    phy2log, rank, cnt = eplb.replicate_experts(np.array([[10.0, 100.0, 30.0]]), 5)
    assert cnt.tolist() == [[1, 3, 1]] and phy2log.tolist() == [[0, 1, 2, 1, 1]]
    assert rank.tolist() == [[0, 0, 0, 1, 2]]


def test_balanced_packing_fills_packs_equally_and_balances():
    w = np.array([[9.0, 8, 7, 6, 5, 4, 3, 2]])
    pack, rank = eplb.balanced_packing(w, 2)
    assert np.bincount(pack[0]).tolist() == [4, 4]
    loads = [w[0][pack[0] == p].sum() for p in range(2)]
    assert abs(loads[0] - loads[1]) <= 2
    with pytest.raises(ValueError, match="equal packs"):
        eplb.balanced_packing(np.ones((1, 5)), 2)


def test_one_item_per_pack_keeps_index_order_as_the_reference():
    # deepseek-ai/EPLB's balanced_packing returns the identity when packs hold one item each
    # (no sort): with 8 experts on 8 GPUs and no redundancy, phy2log is arange, not by weight
    w = np.array([[94, 31, 736, 11159, 16, 88, 146, 13]])
    phy2log, log2phy, logcnt = eplb.rebalance(w, 8, 1, 1, 8)
    assert phy2log.tolist() == [list(range(8))]
    assert log2phy.tolist() == [[[e] for e in range(8)]]
    assert logcnt.tolist() == [[1] * 8]
    pack, rank = eplb.balanced_packing(np.array([[3.0, 9, 1], [5, 2, 7]]), 3)
    assert pack.tolist() == [[0, 1, 2], [0, 1, 2]] and rank.tolist() == [[0] * 3, [0] * 3]


def test_one_group_per_node_keeps_groups_in_node_order():
    # hierarchical with as many groups as nodes: group g lands on node g whatever its load (the
    # lighter group 0 stays on node 0); within a node's one GPU, slots go by weight descending
    w = np.array([[1, 2, 50, 60, 3, 4, 70, 80]], dtype=float)
    phy2log, _, logcnt = eplb.rebalance(w, 8, 2, 2, 2)
    assert phy2log.tolist() == [[3, 2, 1, 0, 7, 6, 5, 4]]
    assert logcnt.tolist() == [[1] * 8]
