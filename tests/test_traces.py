import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from moelab import traces
from moelab.traces import TraceError, TraceMeta


def small(k=3, L=2, E=8, C=4, I=3, tmp=None):
    meta = TraceMeta(source_kind="synthetic", source_id="t", num_experts=E, top_k=k, n_moe_layers=L,
                     concurrency=C, domains=("d",))
    T = C * I
    rng = np.random.default_rng(0)
    ex = np.sort(np.stack([rng.choice(E, (L, k), replace=False) for _ in range(T)]), axis=-1)
    table = traces.build_table(meta, t=np.arange(T), doc=np.arange(T) // 2, pos=np.arange(T) % 2,
                               token=None, domain_code=np.zeros(T), is_test=np.arange(T) % 2 == 1,
                               experts=ex, weights=np.full((T, L, k), 1 / k, np.float32))
    return meta, table


def test_round_trip(tmp_path):
    meta, table = small()
    traces.write_trace(tmp_path / "a.parquet", meta, table)
    tr = traces.read_trace(tmp_path / "a.parquet", expect={"top_k": 3})
    assert tr.meta == meta
    assert tr.frame.height == table.num_rows and tr.n_iterations == 3
    assert tr.experts_by_layer().shape == (12, 2, 3)
    assert tr.frame["split"].to_list()[:4] == ["train", "train", "test", "test"]


def test_domain_codes_index_the_metadata_domains_whatever_order_the_stream_shows_them(tmp_path):
    """The stream may meet its domains in any order; each token's code is its domain's place in meta.domains
    (not the order a categorical column happened to see the labels in)."""
    meta, table = small()
    meta = TraceMeta(**{**meta.__dict__, "domains": ("code", "math", "prose")})
    T = table.num_rows // meta.n_moe_layers
    codes = np.array([2, 2, 0, 0, 1, 1] * (T // 6))  # prose first, then code, then math
    cols = {c: np.asarray(table.column(c).to_numpy(zero_copy_only=False))[:: meta.n_moe_layers]
            for c in ("t", "doc", "pos")}
    ex = traces.Trace(meta, pl.from_arrow(table)).experts_by_layer()
    built = traces.build_table(meta, **cols, token=None, domain_code=codes, is_test=np.zeros(T, bool),
                               experts=ex, weights=np.full(ex.shape, 1 / meta.top_k, np.float32))
    traces.write_trace(tmp_path / "a.parquet", meta, built)
    tr = traces.read_trace(tmp_path / "a.parquet")
    assert tr.token_columns()["domain_code"].tolist() == codes.tolist()
    names = tr.frame.filter(pl.col("layer") == 0)["domain"].cast(pl.String).to_list()
    assert names == [meta.domains[c] for c in codes]


def replace_col(table, name, arr):
    return table.set_column(table.schema.get_field_index(name), name, arr)


def write_raw(path, meta, table):
    pq.write_table(table.replace_schema_metadata({traces.META_KEY: meta.to_json().encode()}), path)


@pytest.mark.parametrize("mutate,message", [
    (lambda t: t.drop_columns(["layer"]), "missing columns \\['layer'\\]"),
    (lambda t: replace_col(t, "t", pa.array(np.arange(t.num_rows)[::-1].astype(np.uint64))), "grouped per token"),
    (lambda t: replace_col(t, "experts", pa.FixedSizeListArray.from_arrays(
        pa.array(np.zeros(t.num_rows * 3, np.uint16)), 3)), "same expert twice"),
    (lambda t: replace_col(t, "experts", pa.FixedSizeListArray.from_arrays(
        pa.array(np.tile(np.array([5, 1, 2], np.uint16), t.num_rows)), 3)), "not sorted"),
    (lambda t: replace_col(t, "experts", pa.FixedSizeListArray.from_arrays(
        pa.array(np.tile(np.array([1, 2, 9], np.uint16), t.num_rows)), 3)), "out of range"),
])
def test_reader_names_what_is_wrong(tmp_path, mutate, message):
    meta, table = small()
    path = tmp_path / "bad.parquet"
    write_raw(path, meta, mutate(table))
    with pytest.raises(TraceError, match=message) as err:
        traces.read_trace(path)
    assert str(path) in str(err.value)


def test_wrong_k_is_reported_against_metadata(tmp_path):
    meta, table = small(k=3)
    other = TraceMeta(**{**meta.__dict__, "top_k": 4})
    write_raw(tmp_path / "k.parquet", other, table)
    with pytest.raises(TraceError, match="k=3, metadata says top_k=4"):
        traces.read_trace(tmp_path / "k.parquet")


def test_metadata_expectation_mismatch(tmp_path):
    meta, table = small()
    traces.write_trace(tmp_path / "a.parquet", meta, table)
    with pytest.raises(TraceError, match="num_experts=8, expected 16"):
        traces.read_trace(tmp_path / "a.parquet", expect={"num_experts": 16})


def test_truncated_file(tmp_path):
    meta, table = small()
    path = tmp_path / "a.parquet"
    traces.write_trace(path, meta, table)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(TraceError, match="truncated or corrupt"):
        traces.read_trace(path)


def test_missing_file_and_foreign_parquet(tmp_path):
    with pytest.raises(TraceError, match="does not exist"):
        traces.read_trace(tmp_path / "nope.parquet")
    pq.write_table(pa.table({"x": [1]}), tmp_path / "f.parquet")
    with pytest.raises(TraceError, match="not a moelab trace"):
        traces.read_trace(tmp_path / "f.parquet")


def test_failed_write_leaves_nothing(tmp_path):
    meta, table = small()
    bad = table.drop_columns(["layer"])
    with pytest.raises(TraceError):
        traces.write_trace(tmp_path / "a.parquet", meta, bad)
    assert list(tmp_path.iterdir()) == []
