import numpy as np
import pytest

from moelab import hotness
from moelab.imports.hotness_formats import read_npy


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
