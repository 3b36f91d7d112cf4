import os
import stat

import polars as pl
import pytest

from moelab.jobs import atomic_dir, atomic_path, write_parquet


def test_atomic_path_replaces_only_when_the_block_succeeds(tmp_path):
    out = tmp_path / "table.parquet"
    out.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(out) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert out.read_text() == "old"
    assert os.listdir(tmp_path) == ["table.parquet"]
    with atomic_path(out) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".parquet" and tmp.name.startswith(".table.parquet.")
        tmp.write_text("new")
    assert out.read_text() == "new"
    assert os.listdir(tmp_path) == ["table.parquet"]


def test_atomic_path_gives_the_usual_permissions_and_clears_a_killed_attempt(tmp_path):
    out = tmp_path / "fig.svg"
    stale = tmp_path / ".fig.svg.abc123.tmp.svg"  # what a SIGKILL mid-write leaves behind
    stale.write_text("<svg")
    other = tmp_path / ".other.svg.abc123.tmp.svg"  # another output's temporary: not ours to remove
    other.write_text("<svg")
    old = os.umask(0o022)
    try:
        with atomic_path(out) as tmp:
            tmp.write_text("<svg/>")
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert not stale.exists() and other.exists()


def test_atomic_dir_and_write_parquet(tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "stale.bin").write_text("previous run")
    with pytest.raises(ValueError):
        with atomic_dir(out) as tmp:
            (tmp / "config.json").write_text("{}")
            raise ValueError("training diverged")
    assert sorted(os.listdir(out)) == ["stale.bin"]
    with atomic_dir(out) as tmp:
        (tmp / "config.json").write_text("{}")
    assert sorted(os.listdir(out)) == ["config.json"]
    assert sorted(os.listdir(tmp_path)) == ["model"]
    frame = pl.DataFrame({"a": [1, 2]})
    write_parquet(frame, tmp_path / "t.parquet")
    assert pl.read_parquet(tmp_path / "t.parquet").equals(frame)
