"""The routing trace: the one data contract between every stage (``docs/design.md``).

A trace is a parquet table, rows in stream order (sorted by ``t``, then ``layer``):

    t u64, doc u32, pos u32, token u32 (nullable), domain enum, split enum(train/test),
    layer u16, experts fixed_size_list<u16>[k], weights fixed_size_list<f32>[k]

``experts`` are sorted by weight descending, ties by lower id, so a prefix is a smaller k.
File metadata (key ``moelab``, JSON) holds :class:`TraceMeta`. Only this module reads and
writes traces; readers validate everything and raise :class:`TraceError` naming the file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from moelab.jobs import atomic_path

FORMAT_VERSION = 1
META_KEY = b"moelab"
SOURCE_KINDS = ("captured", "synthetic", "proxy", "imported")
SPLITS = ("train", "test")


class TraceError(ValueError):
    """A trace file (or a frame about to become one) breaks the contract."""


@dataclass(frozen=True)
class TraceMeta:
    """Metadata every trace carries. ``config`` is the (JSON-able) config that made it."""

    source_kind: str
    source_id: str
    num_experts: int
    top_k: int
    n_moe_layers: int
    concurrency: int
    domains: tuple[str, ...]
    layer_index: tuple[int, ...] = ()  # MoE ordinal -> decoder layer index
    shared_experts: int = 0
    capture_device: str = "none"
    capture_dtype: str = "none"
    config: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if not self.layer_index:
            object.__setattr__(self, "layer_index", tuple(range(self.n_moe_layers)))
        object.__setattr__(self, "domains", tuple(self.domains))
        object.__setattr__(self, "layer_index", tuple(int(x) for x in self.layer_index))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str, path: str | Path = "<trace>") -> "TraceMeta":
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TraceError(f"{path}: metadata is not valid JSON ({exc})") from exc
        names = {f for f in cls.__dataclass_fields__}
        missing = sorted(names - set(raw) - {"layer_index", "shared_experts", "capture_device",
                                             "capture_dtype", "config", "format_version"})
        if missing:
            raise TraceError(f"{path}: metadata lacks required keys {missing}")
        unknown = sorted(set(raw) - names)
        if unknown:
            raise TraceError(f"{path}: metadata has unknown keys {unknown}")
        return cls(**raw)

    def check(self, path: str | Path = "<trace>") -> None:
        if self.format_version != FORMAT_VERSION:
            raise TraceError(f"{path}: format_version {self.format_version}, expected {FORMAT_VERSION}")
        if self.source_kind not in SOURCE_KINDS:
            raise TraceError(f"{path}: source_kind {self.source_kind!r}, expected one of {SOURCE_KINDS}")
        for name in ("num_experts", "top_k", "n_moe_layers", "concurrency"):
            if int(getattr(self, name)) < 1:
                raise TraceError(f"{path}: metadata {name}={getattr(self, name)} must be >= 1")
        if self.top_k > self.num_experts:
            raise TraceError(f"{path}: top_k={self.top_k} exceeds num_experts={self.num_experts}")
        if self.num_experts > 65535:
            raise TraceError(f"{path}: num_experts={self.num_experts} does not fit u16 expert ids")
        if len(self.layer_index) != self.n_moe_layers:
            raise TraceError(f"{path}: layer_index has {len(self.layer_index)} entries, "
                             f"n_moe_layers={self.n_moe_layers}")
        if not self.domains:
            raise TraceError(f"{path}: metadata lists no domains")


@dataclass(frozen=True)
class Trace:
    """A validated trace: metadata plus the table (polars, stream order)."""

    meta: TraceMeta
    frame: pl.DataFrame

    @property
    def n_tokens(self) -> int:
        return self.frame.height // self.meta.n_moe_layers

    @property
    def n_iterations(self) -> int:
        return self.n_tokens // self.meta.concurrency

    def experts(self) -> np.ndarray:
        """``[rows, k]`` u16 expert ids in stream order (a view of the arrow buffer when possible)."""
        return _fixed_list_to_numpy(self.frame.get_column("experts"), self.meta.top_k)

    def weights(self) -> np.ndarray:
        """``[rows, k]`` f32 combine weights."""
        return _fixed_list_to_numpy(self.frame.get_column("weights"), self.meta.top_k)

    def experts_by_layer(self) -> np.ndarray:
        """``[tokens, layers, k]``: rows are (t, layer)-sorted, so this is a reshape."""
        m = self.meta
        return self.experts().reshape(self.n_tokens, m.n_moe_layers, m.top_k)

    def split_token(self, split_fraction: float) -> int:
        """First token of the scored part: ``split_iteration = floor(split_fraction * iterations)`` (``docs/design.md``
        "Splits": policies fit before it and are scored after it)."""
        return int(self.n_iterations * split_fraction) * self.meta.concurrency

    def token_columns(self) -> dict[str, np.ndarray]:
        """Per-token arrays in stream order (one row per token, from the layer-0 rows): ``t``,
        ``doc``, ``pos``, ``token``, ``domain_code`` (index into ``meta.domains``), ``is_test``."""
        f = self.frame.filter(pl.col("layer") == 0)
        return {"t": f.get_column("t").to_numpy(), "doc": f.get_column("doc").to_numpy(),
                "pos": f.get_column("pos").to_numpy(), "token": f.get_column("token").to_numpy(),
                # by label, not the categorical's physical codes: those follow the order labels were first seen
                "domain_code": f.get_column("domain").cast(pl.String).replace_strict(
                    {d: i for i, d in enumerate(self.meta.domains)}, return_dtype=pl.Int32).to_numpy(),
                "is_test": (f.get_column("split").cast(pl.String) == "test").to_numpy()}


def sort_topk(ids: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort each row by weight descending, ties by lower id (the trace contract)."""
    o1 = np.argsort(ids, axis=-1, kind="stable")
    ids, w = np.take_along_axis(ids, o1, -1), np.take_along_axis(w, o1, -1)
    o2 = np.argsort(-w, axis=-1, kind="stable")
    return np.take_along_axis(ids, o2, -1), np.take_along_axis(w, o2, -1)


def _fixed_list_to_numpy(col: pl.Series | pa.Array | pa.ChunkedArray, k: int) -> np.ndarray:
    arr = col.to_arrow() if isinstance(col, pl.Series) else col
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr.flatten().to_numpy(zero_copy_only=False).reshape(-1, k)


def arrow_schema(meta: TraceMeta) -> pa.Schema:
    k = meta.top_k
    return pa.schema(
        [
            pa.field("t", pa.uint64(), nullable=False),
            pa.field("doc", pa.uint32(), nullable=False),
            pa.field("pos", pa.uint32(), nullable=False),
            pa.field("token", pa.uint32(), nullable=True),
            pa.field("domain", pa.dictionary(pa.int8() if len(meta.domains) < 128 else pa.int32(),
                                             pa.string()), nullable=False),
            pa.field("split", pa.dictionary(pa.int8(), pa.string()), nullable=False),
            pa.field("layer", pa.uint16(), nullable=False),
            pa.field("experts", pa.list_(pa.field("item", pa.uint16(), nullable=False), k),
                     nullable=False),
            pa.field("weights", pa.list_(pa.field("item", pa.float32(), nullable=False), k),
                     nullable=False),
        ]
    )


def build_table(
    meta: TraceMeta,
    *,
    t: np.ndarray,
    doc: np.ndarray,
    pos: np.ndarray,
    token: np.ndarray | None,
    domain_code: np.ndarray,
    is_test: np.ndarray,
    experts: np.ndarray,
    weights: np.ndarray,
) -> pa.Table:
    """Assemble a trace table from per-token arrays and per-(token, layer) routing.

    t, doc, pos, token, domain_code, is_test: ``[tokens]`` (stream order, one entry per token);
    experts, weights: ``[tokens, layers, k]``. Rows come out (t, layer)-sorted.
    """
    meta.check()
    n_tok = int(t.shape[0])
    L, k = meta.n_moe_layers, meta.top_k
    if experts.shape != (n_tok, L, k) or weights.shape != (n_tok, L, k):
        raise TraceError(f"experts/weights shape {experts.shape}/{weights.shape}, expected {(n_tok, L, k)}")
    rep = lambda a: np.repeat(np.asarray(a), L)  # noqa: E731 - one token row per layer
    n = n_tok * L
    dom = pa.DictionaryArray.from_arrays(
        pa.array(rep(domain_code).astype(np.int8 if len(meta.domains) < 128 else np.int32)),
        pa.array(list(meta.domains), pa.string()),
    )
    spl = pa.DictionaryArray.from_arrays(pa.array(rep(is_test).astype(np.int8)), pa.array(list(SPLITS)))
    tok = pa.nulls(n, pa.uint32()) if token is None else pa.array(rep(token).astype(np.uint32))
    ex = pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(experts, np.uint16).ravel()), k)
    we = pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(weights, np.float32).ravel()), k)
    layer = np.tile(np.arange(L, dtype=np.uint16), n_tok)
    cols = [pa.array(rep(t).astype(np.uint64)), pa.array(rep(doc).astype(np.uint32)),
            pa.array(rep(pos).astype(np.uint32)), tok, dom, spl, pa.array(layer), ex, we]
    schema = arrow_schema(meta)
    return pa.Table.from_arrays([c.cast(f.type) for c, f in zip(cols, schema)], schema=schema)


def write_trace(path: str | Path, meta: TraceMeta, table: pa.Table, *, validate: bool = True) -> None:
    """Validate, then write atomically (temp file + rename): a crash never leaves half a trace."""
    path = Path(path)
    table = table.replace_schema_metadata({META_KEY: meta.to_json().encode()})
    if validate:
        validate_table(table, meta, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", row_group_size=1 << 20, write_statistics=True)


def read_meta(path: str | Path) -> TraceMeta:
    """Read and check only the metadata (cheap; for planning work before reading rows)."""
    path = Path(path)
    if not path.exists():
        raise TraceError(f"{path}: trace file does not exist")
    try:
        md = pq.read_schema(path).metadata or {}
    except (pa.ArrowInvalid, OSError) as exc:
        raise TraceError(f"{path}: not a readable parquet file (truncated or corrupt?): {exc}") from exc
    if META_KEY not in md:
        raise TraceError(f"{path}: no 'moelab' metadata: not a moelab trace")
    meta = TraceMeta.from_json(md[META_KEY].decode(), path)
    meta.check(path)
    return meta


def read_trace(path: str | Path, *, expect: dict[str, Any] | None = None) -> Trace:
    """Read and fully validate a trace. ``expect`` pins metadata values (e.g. ``{"top_k": 8}``)."""
    path = Path(path)
    meta = read_meta(path)
    for key, want in (expect or {}).items():
        got = getattr(meta, key, None)
        if got != want:
            raise TraceError(f"{path}: metadata {key}={got!r}, expected {want!r}")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise TraceError(f"{path}: not a readable parquet file (truncated or corrupt?): {exc}") from exc
    validate_table(table, meta, path)
    return Trace(meta, pl.from_arrow(table))


def validate_table(table: pa.Table, meta: TraceMeta, path: str | Path = "<trace>") -> None:
    """Check schema, ordering and routing invariants; raise TraceError naming what is wrong."""
    meta.check(path)
    want = arrow_schema(meta)
    names = table.schema.names
    missing = [f.name for f in want if f.name not in names]
    if missing:
        raise TraceError(f"{path}: missing columns {missing}")
    extra = [n for n in names if n not in want.names]
    if extra:
        raise TraceError(f"{path}: unexpected columns {extra}")
    for f in want:
        got = table.schema.field(f.name).type
        if f.name in ("domain", "split"):
            ok = pa.types.is_dictionary(got) and got.value_type in (pa.string(), pa.large_string())
        elif f.name in ("experts", "weights"):
            ok = pa.types.is_fixed_size_list(got) and got.value_type == f.type.value_type
            if ok and got.list_size != meta.top_k:
                raise TraceError(f"{path}: column {f.name} has k={got.list_size}, "
                                 f"metadata says top_k={meta.top_k}")
        else:
            ok = got == f.type
        if not ok:
            raise TraceError(f"{path}: column {f.name} has type {got}, expected {f.type}")
    n, L, k, E = table.num_rows, meta.n_moe_layers, meta.top_k, meta.num_experts
    if n == 0:
        raise TraceError(f"{path}: trace has no rows")
    if n % L:
        raise TraceError(f"{path}: {n} rows is not a multiple of n_moe_layers={L}")
    n_tok = n // L
    if n_tok % meta.concurrency:
        raise TraceError(f"{path}: {n_tok} tokens is not a whole number of iterations "
                         f"(concurrency={meta.concurrency})")
    for name in ("t", "doc", "pos", "layer", "experts", "weights"):
        if table.column(name).null_count:
            raise TraceError(f"{path}: column {name} has nulls")
    col = lambda name: table.column(name).combine_chunks().to_numpy(zero_copy_only=False)  # noqa: E731
    t = col("t").reshape(n_tok, L)
    layer = col("layer").reshape(n_tok, L)
    if not (t == t[:, :1]).all() or not (layer == np.arange(L, dtype=np.uint16)).all():
        raise TraceError(f"{path}: rows are not grouped per token with layers 0..{L - 1} in order")
    if not np.array_equal(t[:, 0], np.arange(n_tok, dtype=np.uint64)):
        raise TraceError(f"{path}: t is not 0..{n_tok - 1} in stream order")
    ex = _fixed_list_to_numpy(table.column("experts"), k)
    we = _fixed_list_to_numpy(table.column("weights"), k)
    if ex.size and int(ex.max()) >= E:
        raise TraceError(f"{path}: expert id {int(ex.max())} out of range for num_experts={E}")
    if k > 1:
        s = np.sort(ex, axis=1)
        if (s[:, 1:] == s[:, :-1]).any():
            bad = int(np.flatnonzero((s[:, 1:] == s[:, :-1]).any(axis=1))[0])
            raise TraceError(f"{path}: row {bad} routes a token to the same expert twice: {ex[bad].tolist()}")
        dw = we[:, 1:] - we[:, :-1]
        order_bad = (dw > 0) | ((dw == 0) & (ex[:, 1:] < ex[:, :-1]))
        if order_bad.any():
            bad = int(np.flatnonzero(order_bad.any(axis=1))[0])
            raise TraceError(f"{path}: row {bad} experts not sorted by weight descending (ties: lower id "
                             f"first): experts {ex[bad].tolist()} weights {we[bad].tolist()}")
    if not np.isfinite(we).all():
        raise TraceError(f"{path}: weights contain NaN or inf")
    splits = table.column("split").combine_chunks().dictionary.to_pylist()
    if not set(splits) <= set(SPLITS):
        raise TraceError(f"{path}: split values {splits}, expected a subset of {list(SPLITS)}")
    doms = table.column("domain").combine_chunks().dictionary.to_pylist()
    if not set(doms) <= set(meta.domains):
        raise TraceError(f"{path}: domains {sorted(set(doms) - set(meta.domains))} not in metadata")
