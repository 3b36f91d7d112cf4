"""Readers of the trace formats: token-level routing that becomes a moelab trace (``moelab.traces``).

Common rules (``_finish``): expert ids are logical; each token's experts are sorted by weight descending,
ties by lower id (the trace contract); weights a dump does not hold are uniform ``1/k`` (so the experts come
out in ascending id order); the stream is cut to whole iterations of ``concurrency`` tokens, the trailing
partial iteration dropped and logged; ``split`` follows the project's rule, ``test`` when ``2 * pos >=
length`` of the token's document. Each reader documents what ``doc``, ``pos`` and ``length`` mean for it.
None draws random numbers: ``seed`` is recorded in the metadata's config only.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from moelab import stream as mstream
import moelab.imports.layout as layout
import moelab.imports.sglang_dumps as sglang_dumps
from moelab.imports.sglang_dumps import PER_TOKEN_FIELDS
from moelab.imports.errors import DENSE_HINT, ImportFileError, fail
from moelab.imports.loaders import as_array, check_map, load_map_file
from moelab.traces import TraceError, TraceMeta, build_table, sort_topk, validate_table

if TYPE_CHECKING:
    from moelab.imports.spec import ImportSpec

log = logging.getLogger(__name__)
UNIFORM = "uniform 1/k (the dump holds no combine weights)"


@dataclass(frozen=True)
class Routed:
    """Tokens in stream order, before the cut to whole iterations."""

    doc: np.ndarray  # [T] document id
    pos: np.ndarray  # [T] position in the document
    length: np.ndarray  # [T] the document's length (for the split)
    token: np.ndarray | None  # [T] token ids, or None when the format has none
    experts: np.ndarray  # [T, L, k] logical expert ids (any integer dtype; < 2^16)
    weights: np.ndarray | None  # [T, L, k], or None for uniform 1/k


def _duplicates(ex: np.ndarray) -> tuple[int, ...] | None:
    """Index (all axes but the last) of the first row routing to one expert twice, else None."""
    s = np.sort(ex, axis=-1)
    dup = (s[..., 1:] == s[..., :-1]).any(-1)
    return tuple(int(i) for i in np.argwhere(dup)[0]) if dup.any() else None


def _finish(spec: "ImportSpec", seed: int, r: Routed, *, E: int, layer_index: tuple[int, ...],
            notes: dict[str, Any]) -> tuple[TraceMeta, pa.Table]:
    C = int(spec.concurrency)
    T, L, k = r.experts.shape
    n = (T // C) * C
    if n == 0:
        raise fail(spec.path, "", f"{T} tokens do not fill one iteration of concurrency={C}: lower the "
                                  f"config key concurrency")
    if n < T:
        log.warning("%s: dropped the last %d of %d tokens (a partial iteration of concurrency=%d)",
                    spec.source_id, T - n, T, C)
    w = np.full((n, L, k), 1.0 / k, np.float32) if r.weights is None else r.weights[:n].astype(np.float32)
    ex, w = sort_topk(r.experts[:n], w)  # ids keep their (small) dtype
    meta = TraceMeta(
        source_kind="imported", source_id=spec.source_id, num_experts=E, top_k=k, n_moe_layers=L,
        concurrency=C, domains=(str(spec.domain),), layer_index=layer_index,
        config={"format": spec.format, "path": spec.path, "import": spec.to_config(), "seed": seed,
                "weights": UNIFORM if r.weights is None else "from the file", "tokens_in_file": T,
                "tokens_dropped": T - n, **notes})
    pos = r.pos[:n].astype(np.int64)
    table = build_table(meta, t=np.arange(n, dtype=np.uint64), doc=r.doc[:n], pos=pos,
                        token=None if r.token is None else r.token[:n], domain_code=np.zeros(n, np.int8),
                        is_test=2 * pos >= r.length[:n], experts=ex.astype(np.uint16), weights=w)
    try:
        validate_table(table, meta, spec.path)
    except TraceError as exc:
        raise ImportFileError(str(exc)) from None
    return meta, table


def _doc_lengths(doc: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Per token, its document's length as far as the file shows it: the highest position seen + 1."""
    top = np.zeros(int(doc.max()) + 1, np.int64)
    np.maximum.at(top, doc, pos + 1)
    return top[doc]


# --- SGLang per_token ---------------------------------------------------------------------------------------

def _ints_1d(x: Any, path: Path, field: str, n: int) -> np.ndarray:
    """``n`` non-negative integers, as int32 when they fit (token ids and positions do)."""
    if x is None:
        raise fail(path, field, f"is None, expected {n} integers (one per token)")
    empty = hasattr(x, "__len__") and len(x) == 0  # an empty list has no integer dtype
    a = np.zeros(0, np.int32) if empty else as_array(x, path, field, "iu")
    if a.shape != (n,):
        raise fail(path, field, f"has shape {a.shape}, expected ({n},) (one per token of topk_ids_of_layer)")
    if (a < 0).any():
        raise fail(path, field, f"holds negative values (first at index {int(np.argmax(a < 0))})")
    return a.astype(np.int32) if a.size == 0 or int(a.max()) < 2**31 else a.astype(np.int64)


def _token_record(r: sglang_dumps.Record, dump: sglang_dumps.Dump, layers: np.ndarray, k: int | None
                  ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None, int | None]:
    """One per_token record checked and made small: (uint16 logical ids ``[T, L, k]``, int32 token ids,
    positions, sequence lengths), or None when it holds no token; and k (from the first record with tokens)."""
    Lmap, P = dump.p2l.shape
    field = r.where("topk_ids_of_layer")
    ids = as_array(r.data["topk_ids_of_layer"], r.path, field, "iu")
    if ids.ndim != 3 or ids.shape[0] != Lmap:
        raise fail(r.path, field, f"has shape {tuple(ids.shape)}, expected [{Lmap} layers, tokens, "
                                  f"top-k] (layers from the physical-to-logical map)")
    T = ids.shape[1]
    tok = _ints_1d(r.data["input_ids"], r.path, r.where("input_ids"), T)
    pos = _ints_1d(r.data["positions"], r.path, r.where("positions"), T)
    if T == 0:
        return None, k
    esl = r.data["extend_seq_lens"]
    if esl is None or (hasattr(esl, "__len__") and len(esl) == 0):  # a decode pass: one token a request
        lens = np.ones(T, np.int32)
    else:
        lens = as_array(esl, r.path, r.where("extend_seq_lens"), "iu")
    if lens.ndim != 1 or lens.sum() != T or (lens < 1).any():
        raise fail(r.path, r.where("extend_seq_lens"), f"{lens.tolist()[:8]} must be positive lengths "
                                                       f"summing to the record's {T} tokens")
    sub = ids[layers].astype(np.int64)  # [L, T, K]
    valid = sub >= 0
    n = valid.sum(-1)
    if (n == 0).all(-1).any():
        ly = int(layers[np.flatnonzero((n == 0).all(-1))[0]])
        raise fail(r.path, field, f"decoder layer {ly} routed no token (all -1): a dense layer; {DENSE_HINT}")
    kk = int(n.max()) if k is None else k
    bad = (n != kk) | ~valid[..., :kk].all(-1)
    if bad.any():
        ly, t = np.argwhere(bad)[0].tolist()
        raise fail(r.path, field, f"decoder layer {int(layers[ly])} token {t} has {int(n[ly, t])} routed "
                                  f"experts, expected {kk} in the first columns (-1 only after them)")
    k = kk
    phys = sub[..., :k]
    if phys.max() >= P:
        ly, t, j = np.argwhere(phys >= P)[0].tolist()
        raise fail(r.path, field, f"physical id {int(phys[ly, t, j])} (decoder layer {int(layers[ly])}, "
                                  f"token {t}) is outside the physical-to-logical map's {P} physical experts")
    logical = dump.p2l[layers[:, None, None], phys].transpose(1, 0, 2)  # [T, L, k]
    dup = _duplicates(logical)
    if dup is not None:
        t, ly = dup
        raise fail(r.path, field, f"token {t} reaches logical expert(s) {logical[t, ly].tolist()} twice "
                                  f"at decoder layer {int(layers[ly])} after the physical-to-logical map")
    return (logical.astype(np.uint16), tok, pos, lens.astype(np.int32)), k


def read_sglang_per_token(spec: "ImportSpec", seed: int) -> tuple[TraceMeta, pa.Table]:
    """SGLang ``per_token`` records, tokens in (forward pass, rank, record) order: the order the engine ran
    them. ``topk_ids_of_layer`` ``[layers, tokens, 8]`` holds physical ids, -1 where nothing was routed (a
    dense layer, or columns past the model's k), mapped to logical ids with the dump's map (or the configured
    one). A document is one sequence of one forward pass (``extend_seq_lens``; each token of a decode pass is
    its own sequence): the dump has no request ids to join a request's passes. ``pos`` is ``positions``,
    ``token`` is ``input_ids``.

    Streamed: one rank file at a time (memory-mapped); each record is checked and kept only as small arrays
    (uint16 logical ids ``[tokens, layers, k]``, int32 token ids, positions and sequence lengths), the file's
    records released before the next file; the records are put in stream order at the end."""
    layers: np.ndarray | None = None
    dump = None
    k: int | None = None
    kept: list[tuple[tuple[int, int, int, int], np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    ranks: set[int] = set()
    for dump, rf in sglang_dumps.scan(spec.path, ep_size=spec.ep_size, fields=PER_TOKEN_FIELDS, mode="per_token",
                                      map_path=spec.physical_to_logical, experts=spec.experts):
        Lmap = dump.p2l.shape[0]
        if layers is None:
            if dump.experts > 65535:
                raise fail(dump.map_source, "physical_to_logical", f"{dump.experts} logical experts do not fit "
                                                                   f"the trace's u16 expert ids")
            layers = np.asarray(spec.moe_layers if spec.moe_layers is not None else range(Lmap))
            if layers.max() >= Lmap:
                raise fail(dump.map_source, "moe_layers", f"lists layer {int(layers.max())}; the dump has "
                                                          f"{Lmap} layers")
        for r in rf.records:
            ranks.add(r.rank)
            item, k = _token_record(r, dump, layers, k)
            if item is not None:
                kept.append(((r.forward_pass_id, r.rank, rf.order, r.index), *item))
        del rf, r  # this file's records go before scan opens the next
    assert dump is not None and layers is not None  # scan raises on a dump without records
    if not kept:
        raise fail(spec.path, "records", "no record holds tokens")
    if spec.top_k is not None and k != spec.top_k:
        raise fail(spec.path, "topk_ids_of_layer", f"routes {k} experts per token, the config says top_k={spec.top_k}")
    kept.sort(key=itemgetter(0))  # stream order: forward pass, rank, record
    ex = np.concatenate([x[1] for x in kept])
    tok = np.concatenate([x[2] for x in kept])
    p = np.concatenate([x[3] for x in kept])
    lens = np.concatenate([x[4] for x in kept])
    del kept
    doc = np.repeat(np.arange(lens.size), lens)
    return _finish(spec, seed, Routed(doc, p, _doc_lengths(doc, p), tok, ex, None),
                   E=dump.experts, layer_index=tuple(int(x) for x in layers),
                   notes={"token_order": "forward pass, rank, record", "documents": "one sequence of one forward "
                          "pass (decode tokens: one each)", "ranks": sorted(ranks)})


# --- SGLang routed experts (responses) ----------------------------------------------------------------------

def _request(obj: Any, path: Path, where: str, k: int, L: int | None) -> tuple[np.ndarray, int]:
    """One response's ``meta_info.routed_experts`` as ``[seq_len - 1, layers, k]`` and its layer count."""
    meta = obj.get("meta_info") if isinstance(obj, dict) else None
    if not isinstance(meta, dict) or not isinstance(meta.get("routed_experts"), str):
        raise fail(path, f"{where}: meta_info.routed_experts", "missing or not a base64 string (was the request "
                                                                 "sent with return_routed_experts?)")
    field = f"{where}: meta_info.routed_experts"
    try:
        raw = base64.b64decode(meta["routed_experts"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise fail(path, field, f"not valid base64 ({exc})") from None
    if len(raw) % 4:
        raise fail(path, field, f"{len(raw)} bytes is not a whole number of int32 values")
    a = np.frombuffer(raw, "<i4").astype(np.int64)
    seq = None
    if isinstance(meta.get("prompt_tokens"), int) and isinstance(meta.get("completion_tokens"), int):
        seq = meta["prompt_tokens"] + meta["completion_tokens"]
    if L is None:
        if seq is None or seq < 2:
            raise fail(path, f"{where}: meta_info", "no prompt_tokens + completion_tokens to tell the sequence "
                                                    "length: set the config key num_hidden_layers")
        if a.size % ((seq - 1) * k):
            raise fail(path, field, f"{a.size} ids do not fit (seq_len - 1 = {seq - 1}, layers, top_k = {k})")
        L = a.size // ((seq - 1) * k)
    if a.size % (L * k):
        raise fail(path, field, f"{a.size} ids do not fit (tokens, num_hidden_layers = {L}, top_k = {k})")
    rows = a.size // (L * k)
    if seq is not None and rows != seq - 1:
        raise fail(path, field, f"holds {rows} tokens x {L} layers x {k}; prompt_tokens + completion_tokens - 1 "
                                f"= {seq - 1} (is top_k or num_hidden_layers wrong?)")
    return a.reshape(rows, L, k), L


def read_sglang_routed_experts(spec: "ImportSpec", seed: int) -> tuple[TraceMeta, pa.Table]:
    """A JSON-lines file, one SGLang response object a line with ``meta_info.routed_experts``: base64 of int32
    ``[seq_len - 1, num_hidden_layers, top_k]`` over every decoder layer (``moe_layers`` keeps the MoE ones).
    Each request is a document (``pos`` its row); requests are served in file order through the project's
    continuous-batching stream (``moelab.stream.schedule``), as captured traces are. Ids are physical when
    SGLang ran with EPLB/redundant experts: give ``physical_to_logical`` then; else they are logical ids below
    ``experts``. The responses hold no prompt token ids, so ``token`` is null."""
    path = layout.need_file(Path(spec.path), "JSON-lines of SGLang responses")
    k = int(spec.top_k)
    p2l = None
    if spec.physical_to_logical is not None:
        p2l, E = check_map(load_map_file(spec.physical_to_logical), spec.physical_to_logical,
                           "physical_to_logical", spec.experts)
    else:
        E = int(spec.experts)
    L = spec.num_hidden_layers
    reqs: list[np.ndarray] = []
    with path.open() as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"line {lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise fail(path, where, f"not valid JSON ({exc})") from None
            a, L = _request(obj, path, where, k, L)
            layers = np.asarray(spec.moe_layers if spec.moe_layers is not None else range(L))
            field = f"{where}: meta_info.routed_experts"
            if layers.max() >= L:
                raise fail(path, field, f"has {L} layers; moe_layers lists layer {int(layers.max())}")
            a = a[:, layers]
            if a.size and a.min() < 0:
                raise fail(path, field, f"holds a negative expert id {int(a.min())}")
            if p2l is not None:
                # the map has a row per decoder layer (SGLang's own map) or per MoE layer
                if p2l.shape[0] not in (L, len(layers)):
                    raise fail(spec.physical_to_logical, "physical_to_logical",
                               f"has {p2l.shape[0]} layers, expected one per decoder layer ({L}) or per MoE "
                               f"layer ({len(layers)})")
                rows_of = layers if p2l.shape[0] == L else np.arange(len(layers))
                if a.size and a.max() >= p2l.shape[1]:
                    raise fail(path, field, f"physical id {int(a.max())} is outside the map's {p2l.shape[1]} "
                                            f"physical experts")
                a = p2l[rows_of[None, :, None], a]
            elif a.size and a.max() >= E:
                raise fail(path, field, f"expert id {int(a.max())} is outside experts={E} (physical ids? give "
                                        f"physical_to_logical)")
            dup = _duplicates(a)
            if dup is not None:
                t, ly = dup
                raise fail(path, field, f"token {t} reaches expert {a[t, ly].tolist()} twice at decoder layer "
                                        f"{int(layers[ly])} (a dense layer? list the MoE layers in moe_layers)")
            if len(a):
                reqs.append(a)
    if not reqs:
        raise fail(path, "", "no response with routed experts")
    C = int(spec.concurrency)
    lengths = np.asarray([len(a) for a in reqs])
    try:
        st = mstream.schedule(lengths, C)
    except ValueError as exc:
        raise fail(path, "", f"{exc}: lower the config key concurrency") from None
    start = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    rows = start[st.request] + st.pos
    ex = np.concatenate(reqs)[rows]
    return _finish(spec, seed, Routed(st.request, st.pos, st.length, None, ex, None), E=E,
                   layer_index=tuple(int(x) for x in layers),
                   notes={"token_order": "requests in file order, continuous batching (moelab.stream)",
                          "documents": "one request each", "requests": len(reqs),
                          "tokens_in_file": int(lengths.sum()), "tokens_dropped": int(lengths.sum()) - st.n_tokens})


# --- FLAME-MoE ----------------------------------------------------------------------------------------------

def _list_column(table: pa.Table, name: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A list column as (flat values, per-row lengths)."""
    if name not in table.column_names:
        raise fail(path, name, f"missing column; the file has {table.column_names}")
    col = table.column(name).combine_chunks()
    if not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_fixed_size_list(col.type)):
        raise fail(path, name, f"expected a list column, got {col.type}")
    if col.null_count:
        raise fail(path, name, f"has {col.null_count} null rows")
    lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
    return col.flatten().to_numpy(zero_copy_only=False), lengths


def read_flame_moe(spec: "ImportSpec", seed: int) -> tuple[TraceMeta, pa.Table]:
    """A FLAME-MoE ``actives`` folder: ``{layer}.parquet`` per MoE layer, one row per token, ``indices``
    (expert ids) and ``scores`` (their probabilities, kept as weights). Rows are tokens in file order; the files
    hold no sequence boundaries, so the whole file is one document (``pos`` = row; the split puts its second
    half in test) and ``token`` is null. k is the lists' length; ``experts`` (default 64) bounds the ids."""
    files = layout.flame_files(Path(spec.path))
    E = int(spec.experts)
    ex, ws, k, T, first = [], [], None, None, None
    for f in files.values():
        try:
            table = pq.read_table(f, columns=[c for c in ("scores", "indices") if c in pq.read_schema(f).names])
        except (pa.ArrowInvalid, OSError) as exc:
            raise fail(f, "", f"not a readable parquet file ({exc})") from None
        idx, n_i = _list_column(table, "indices", f)
        sc, n_s = _list_column(table, "scores", f)
        if T is None:
            T, first = table.num_rows, f
        elif table.num_rows != T:
            raise fail(f, "", f"has {table.num_rows} rows, {first.name} has {T}: every layer file holds one row "
                              f"per token of the same stream")
        if T == 0:
            raise fail(f, "", "has no rows")
        want = k if k is not None else int(n_i[0])
        if (n_i != want).any() or want < 1:
            row = int(np.argmax(n_i != want))
            raise fail(f, "indices", f"row {row} holds {int(n_i[row])} ids, expected {want} (one k for every row "
                                     f"of every layer, at least 1)")
        if not np.array_equal(n_s, n_i):
            raise fail(f, "scores", f"row {int(np.argmax(n_s != n_i))} has a different length from indices")
        k = want
        if idx.dtype.kind not in "iu":
            raise fail(f, "indices", f"expected integer expert ids, got {idx.dtype}")
        if idx.min() < 0 or idx.max() >= E:
            bad = int(np.argmax((idx < 0) | (idx >= E)))
            raise fail(f, "indices", f"expert id {int(idx[bad])} (row {bad // k}) is outside 0..{E - 1} "
                                     f"(experts={E})")
        if sc.dtype.kind != "f" or not np.isfinite(sc).all():
            raise fail(f, "scores", "expected finite probabilities")
        e = idx.reshape(T, k)
        dup = _duplicates(e)
        if dup is not None:
            raise fail(f, "indices", f"row {dup[0]} routes to one expert twice: {e[dup[0]].tolist()}")
        ex.append(e)
        ws.append(sc.reshape(T, k))
    assert T is not None and k is not None
    if spec.top_k is not None and k != spec.top_k:
        raise fail(spec.path, "indices", f"lists {k} experts per token, the config says top_k={spec.top_k}")
    pos = np.arange(T, dtype=np.int64)
    return _finish(spec, seed, Routed(np.zeros(T, np.int64), pos, np.full(T, T), None, np.stack(ex, 1),
                                      np.stack(ws, 1)),
                   E=E, layer_index=tuple(files), notes={"token_order": "file rows",
                                                         "documents": "the whole file is one document"})
