import numpy as np
import pytest
import torch

from moelab import hotness
from moelab.imports.hotness_formats import read_npy, read_sglang_dump


def test_npy_round_trip_and_errors(tmp_path):
    hot = np.random.default_rng(0).integers(0, 50, size=(6, 3, 8))
    np.save(tmp_path / "h.npy", hot)
    assert np.array_equal(read_npy(tmp_path / "h.npy"), hot)
    np.save(tmp_path / "rank2.npy", hot[0])
    with pytest.raises(hotness.HotnessError, match="rank 2"):
        read_npy(tmp_path / "rank2.npy")
    bad = hot.astype(float)
    bad[1, 2, 3] = -1
    np.save(tmp_path / "neg.npy", bad)
    with pytest.raises(hotness.HotnessError, match=r"negative values \(first at index \[1, 2, 3\]\)"):
        read_npy(tmp_path / "neg.npy")
    bad[1, 2, 3] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(hotness.HotnessError, match="NaN"):
        read_npy(tmp_path / "nan.npy")
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(hotness.HotnessError, match="not a readable"):
        read_npy(tmp_path / "junk.npy")
    with pytest.raises(hotness.HotnessError, match="no such"):
        read_npy(tmp_path / "none.npy")


def test_sglang_stat_mode(tmp_path):
    counts = torch.randint(0, 9, (5, 2, 8))
    torch.save({"rank": 0, "logical_count": counts, "average_utilization_rate_over_window": 0.8},
               tmp_path / "stat.pt")
    assert np.array_equal(read_sglang_dump(tmp_path / "stat.pt"), counts.numpy())


def test_sglang_per_pass_mode_maps_physical_to_logical_and_sums_ranks(tmp_path):
    # 2 layers, 6 physical slots over 4 logical experts (experts 1 and 3 replicated)
    p2l = torch.tensor([[0, 1, 2, 3, 1, 3], [3, 2, 1, 0, 0, 2]])
    recs = []
    for fp in (7, 8):
        for rank in (0, 1):
            c = torch.full((2, 6), fp + rank)
            recs.append({"forward_pass_id": fp, "rank": rank, "gatherer_key": "primary",
                         "global_physical_count": c})
    torch.save({"records": recs, "last_physical_to_logical_map": p2l}, tmp_path / "pp.pt")
    hot = read_sglang_dump(tmp_path / "pp.pt")
    assert hot.shape == (2, 2, 4)
    per_slot = 7 + 8  # pass 7: ranks 0 and 1
    assert hot[0, 0].tolist() == [per_slot, 2 * per_slot, per_slot, 2 * per_slot]
    assert hot[0, 1].tolist() == [2 * per_slot, per_slot, 2 * per_slot, per_slot]
    assert hot[1].sum() == 2 * 6 * (8 + 9)


def test_sglang_bad_dumps(tmp_path):
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(hotness.HotnessError, match="expected a dict"):
        read_sglang_dump(tmp_path / "list.pt")
    torch.save({"foo": 1}, tmp_path / "keys.pt")
    with pytest.raises(hotness.HotnessError, match="neither 'logical_count'"):
        read_sglang_dump(tmp_path / "keys.pt")
    torch.save({"records": [{"forward_pass_id": 0, "rank": 0, "gatherer_key": "primary",
                             "global_physical_count": torch.ones(2, 5)}],
                "last_physical_to_logical_map": torch.zeros(2, 6, dtype=torch.long)}, tmp_path / "shape.pt")
    with pytest.raises(hotness.HotnessError, match="has shape"):
        read_sglang_dump(tmp_path / "shape.pt")
