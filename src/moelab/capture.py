"""Capture the routing a real MoE checkpoint makes on the corpus, as a routing trace.

The experts recorded are the ones the model used: a forward hook on each MoE layer's router
module (``mlp.gate``) reads its ``(logits, weights, indices)`` output, the very tensors the
layer passes to its experts. Nothing is recomputed from logits, so DeepSeek-style routers (group
limit, score-correction bias, sigmoid scores) are recorded as they decide.

The stream (``docs/design.md``, "Iterations"): documents cut into requests of at most ``seq_len`` tokens,
taken in a seeded order and scheduled ``concurrency`` at a time. Each request runs through the model in
one forward pass (a causal model's routing does not depend on its batch neighbours), batched and
right-padded, and ``t`` is assigned afterwards by replaying the scheduler.

The gaussian-input proxy (:func:`proxy_routing`) feeds each router N(0, 1) hidden states: the
measurement that made the reference study miss real co-activation structure. It is kept as a
control, labelled ``proxy``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from moelab import stream as mstream
from moelab.traces import TraceMeta, build_table, sort_topk

log = logging.getLogger(__name__)

# model_type -> how its MoE layers and shared experts are found. All of them expose the router
# as ``layer.mlp.gate`` returning (logits, top-k weights, top-k indices) in transformers 5.
SUPPORTED = ("olmoe", "mixtral", "qwen2_moe", "qwen3_moe", "deepseek_v2", "deepseek_v3")
DTYPES = ("float32", "bfloat16", "float16", "auto")


class CaptureError(ValueError):
    """A checkpoint cannot be captured (missing, not MoE, unsupported), with what to do."""


@dataclass(frozen=True)
class MoeLayer:
    decoder_index: int
    gate: object  # torch.nn.Module
    num_experts: int
    top_k: int


@dataclass
class Request:
    doc: int
    offset: int  # token offset of this chunk inside its document
    ids: np.ndarray  # token ids
    doc_len: int


@dataclass
class Captured:
    """Routing of the stream's tokens, in stream order."""

    meta: TraceMeta
    stream: mstream.Stream
    doc: np.ndarray
    pos: np.ndarray
    token: np.ndarray
    domain_code: np.ndarray
    is_test: np.ndarray
    experts: np.ndarray  # [tokens, layers, k] u16
    weights: np.ndarray  # [tokens, layers, k] f32
    tokens_per_s: float = 0.0

    def table(self):  # noqa: ANN201 - pyarrow.Table
        t = np.arange(self.stream.n_tokens, dtype=np.uint64)
        return build_table(self.meta, t=t, doc=self.doc, pos=self.pos, token=self.token,
                           domain_code=self.domain_code, is_test=self.is_test,
                           experts=self.experts, weights=self.weights)


# ---------------------------------------------------------------------------------------------
# Loading.

def _torch_dtype(name: str):  # noqa: ANN202
    import torch

    if name == "auto":
        return "auto"
    if name not in DTYPES:
        raise CaptureError(f"dtype {name!r}: expected one of {DTYPES}")
    return getattr(torch, name)


def _missing(path: str, exc: Exception, cache_dir: str | None = None) -> CaptureError:
    from moelab.hub import cache_dir as hub_cache

    return CaptureError(
        f"model {path!r} not found: it is not a local folder and not in the Hugging Face cache "
        f"({hub_cache(cache_dir)}; capture reads only the cache). In the workflow the download_model rule fetches "
        f"a hub id first, where Snakemake runs (it needs network there); by hand: `hf download {path}` with "
        f"the same HF_HOME, or set the model's `path` to a folder holding config.json, the weights and the "
        f"tokenizer. ({type(exc).__name__}: {exc})")


def check_config(path: str, local_only: bool = True, revision: str | None = None,  # noqa: ANN201 - PretrainedConfig
                 cache_dir: str | None = None):
    """Load only the config and check the architecture: fails fast, before any weights load."""
    from transformers import AutoConfig

    try:
        cfg = AutoConfig.from_pretrained(path, local_files_only=local_only, revision=revision, cache_dir=cache_dir)
    except (OSError, ValueError) as exc:
        raise _missing(path, exc, cache_dir) from None
    mt = getattr(cfg, "model_type", "?")
    if mt not in SUPPORTED:
        n_exp = next((getattr(cfg, a) for a in ("num_experts", "num_local_experts", "n_routed_experts")
                      if getattr(cfg, a, None)), None)
        what = "not a Mixture-of-Experts model" if not n_exp else "an unsupported MoE architecture"
        raise CaptureError(f"model {path!r} has model_type {mt!r}: {what}. Supported families: "
                           f"{', '.join(SUPPORTED)}")
    return cfg


def load(path: str, *, dtype: str = "float32", device: str = "cpu", local_only: bool = True,  # noqa: ANN201
         device_map: str | dict | None = None, max_memory: dict | None = None, offload_folder: str | None = None,
         revision: str | None = None, cache_dir: str | None = None):
    """(model, tokenizer) from a local folder or a hub id (at ``revision``), offline by default.

    Without ``device_map`` the model goes to ``device``. With one (``auto``, ``balanced``, ``sequential`` or a
    module -> device mapping; ``max_memory`` and ``offload_folder`` as transformers takes them) accelerate
    spreads it over the devices and ``device`` is not used: inputs go where the embedding runs
    (:func:`input_device`)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_config(path, local_only, revision, cache_dir)
    where = {"device_map": device_map, "max_memory": max_memory, "offload_folder": offload_folder} \
        if device_map is not None else {}
    try:
        tok = AutoTokenizer.from_pretrained(path, local_files_only=local_only, revision=revision, cache_dir=cache_dir)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=_torch_dtype(dtype), local_files_only=local_only,
                                                     revision=revision, cache_dir=cache_dir, **where)
    except (OSError, ValueError) as exc:
        raise _missing(path, exc, cache_dir) from None
    if device_map is None:
        model.to(device)
    model.eval()
    return model, tok


def module_device(module):  # noqa: ANN001, ANN201 - torch.device
    """Where ``module`` computes: its accelerate hook's execution device when a device map placed it (its
    weights may then sit on the meta device, offloaded), else the device of its first parameter."""
    import torch

    hook = getattr(module, "_hf_hook", None)
    dev = getattr(hook, "execution_device", None)
    if dev is not None:
        return torch.device(f"cuda:{dev}" if isinstance(dev, int) else dev)
    return next(module.parameters()).device


def input_device(model):  # noqa: ANN001, ANN201 - torch.device
    """Where the token ids go: the device of the embedding layer (with a device map, not a fixed one)."""
    return module_device(model.get_input_embeddings())


def placement(model) -> dict:  # noqa: ANN001
    """The devices a device-mapped model spans (for the trace metadata); empty for a model on one device."""
    dm = getattr(model, "hf_device_map", None)
    if not dm:
        return {}
    return {"model_devices": sorted({str(d) for d in dm.values()})}


def load_entry(model: dict, device: str, hub_record=None, cache_dir: str | None = None):  # noqa: ANN001, ANN201
    """(model, tokenizer) of one ``capture.models`` entry as a capture rule passes it (``CaptureSpec.model``):
    its path, dtype and ``device_map``. A hub id loads, from the cache only, the commit its download record
    (``results/models/hub/<model>.json``, the ``download_model`` rule's output) names. ``hub_record`` is that
    file's path, or the rule's ``hub`` input as it is (a list of none or one path)."""
    if isinstance(hub_record, (list, tuple)):
        if len(hub_record) > 1:
            raise CaptureError(f"model {model['name']!r}: expected one download record, got {list(hub_record)}")
        hub_record = hub_record[0] if hub_record else None
    revision = None
    if hub_record:
        from moelab import hub

        record = json.loads(Path(hub_record).read_text())
        if record["repo_id"] != model["path"]:
            raise CaptureError(f"model {model['name']!r}: the download record {hub_record} is for "
                               f"{record['repo_id']!r}, not {model['path']!r}: rerun the download rule")
        hub.snapshot(record, cache_dir)
        revision = record["commit"]
    return load(model["path"], dtype=model["dtype"], device=device, device_map=model.get("device_map"),
                revision=revision, cache_dir=cache_dir)


def moe_layers(model) -> list[MoeLayer]:  # noqa: ANN001
    """Every decoder layer whose MLP is a routed MoE block, in order."""
    layers = getattr(getattr(model, "model", None), "layers", None)
    if layers is None:
        raise CaptureError(f"{type(model).__name__}: no decoder layers at model.model.layers")
    out = []
    for i, layer in enumerate(layers):
        gate = getattr(getattr(layer, "mlp", None), "gate", None)
        if gate is None or not hasattr(gate, "top_k") or not hasattr(gate, "weight"):
            continue  # a dense layer (DeepSeek's first_k_dense_replace, Qwen's mlp_only_layers)
        out.append(MoeLayer(i, gate, int(gate.num_experts), int(gate.top_k)))
    if not out:
        raise CaptureError(f"{type(model).__name__} has no MoE layers (no mlp.gate router): "
                           f"not a Mixture-of-Experts model")
    return out


def shared_experts(config) -> int:  # noqa: ANN001
    """Always-active experts per MoE layer (not in the trace's ``experts``)."""
    if getattr(config, "n_shared_experts", None):
        return int(config.n_shared_experts)
    if getattr(config, "shared_expert_intermediate_size", 0):
        return 1
    return 0


class RouterRecorder:
    """Forward hooks on the routers; collects each call's top-k (indices, weights) per layer."""

    def __init__(self, layers: list[MoeLayer]):
        self.layers = layers
        self.calls: list[list[tuple]] = [[] for _ in layers]
        self._handles = []

    def __enter__(self) -> "RouterRecorder":
        for j, ml in enumerate(self.layers):
            self._handles.append(ml.gate.register_forward_hook(self._hook(j)))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _hook(self, j: int):  # noqa: ANN202
        def hook(module, args, output) -> None:  # noqa: ANN001
            if not (isinstance(output, tuple) and len(output) == 3):
                raise CaptureError(f"router {type(module).__name__} returned {type(output).__name__}, "
                                   f"expected (logits, weights, indices)")
            self.calls[j].append((output[2].detach(), output[1].detach()))
        return hook

    def pop(self) -> list[tuple]:
        """The last call's (indices, weights) per layer, moved to the CPU, then cleared."""
        out = []
        for j, calls in enumerate(self.calls):
            if len(calls) != 1:
                raise CaptureError(f"router of MoE layer {j} ran {len(calls)} times in one forward pass")
            idx, w = calls[0]
            out.append((idx.to("cpu").numpy(), w.float().to("cpu").numpy()))
            calls.clear()
        return out


# ---------------------------------------------------------------------------------------------
# The stream.

ARRIVALS = ("shuffled", "domain_phases")


def make_requests(corpus: pl.DataFrame, tokenizer, seq_len: int, seed: int,  # noqa: ANN001
                  parts: tuple[str, ...] = ("train", "heldout"), arrival: str = "shuffled",
                  phase_requests: int = 128) -> tuple[list[Request], list[str]]:
    """Documents tokenised and cut into requests of at most ``seq_len`` tokens, in a seeded order.

    ``arrival="domain_phases"``: requests arrive in phases of ``phase_requests`` requests of one domain,
    the domains in a seeded order that is redrawn every cycle, so the mix of the stream (and the experts it
    loads) moves over time, as serving load moves between workloads."""
    if arrival not in ARRIVALS:
        raise CaptureError(f"arrival={arrival!r}: expected one of {ARRIVALS}")
    docs = corpus.filter(pl.col("part").cast(pl.String).is_in(list(parts)))
    if docs.height == 0:
        raise CaptureError(f"the corpus has no documents in parts {list(parts)}")
    domains = [str(d) for d in corpus.get_column("domain").cat.get_categories().to_list()] \
        if corpus.schema["domain"] == pl.Categorical else list(corpus.schema["domain"].categories)
    order = np.random.default_rng([seed, 2]).permutation(docs.height)
    texts = docs.get_column("text").to_list()
    ids_all = tokenizer([texts[i] for i in order], add_special_tokens=False)["input_ids"]
    doc_ids = docs.get_column("doc").to_numpy()[order]
    reqs = []
    for d, ids in zip(doc_ids, ids_all, strict=True):
        ids = np.asarray(ids, dtype=np.int64)
        for off in range(0, len(ids), seq_len):
            reqs.append(Request(int(d), off, ids[off:off + seq_len], len(ids)))
    # Requests arrive in a seeded order too, so the slots of one iteration hold chunks of many
    # documents (in document order, one long document would fill every slot at once).
    reqs = [reqs[i] for i in np.random.default_rng([seed, 3]).permutation(len(reqs))]
    if arrival == "domain_phases":
        reqs = _domain_phases(reqs, docs, phase_requests, np.random.default_rng([seed, 4]))
    return reqs, domains


def _domain_phases(reqs: list[Request], docs: pl.DataFrame, phase_requests: int,
                   rng: np.random.Generator) -> list[Request]:
    if phase_requests < 1:
        raise CaptureError(f"phase_requests={phase_requests} must be >= 1")
    dom_of = dict(zip(docs.get_column("doc").to_list(), docs.get_column("domain").cast(pl.String).to_list(),
                      strict=True))
    queues: dict[str, list[Request]] = {}
    for r in reqs:  # keeps the shuffled order within each domain
        queues.setdefault(dom_of[r.doc], []).append(r)
    names = sorted(queues)
    out: list[Request] = []
    while any(queues.values()):
        for i in rng.permutation(len(names)):
            q = queues[names[i]]
            out += q[:phase_requests]
            del q[:phase_requests]
    return out


def _batches(lengths: np.ndarray, batch_size: int, max_batch_tokens: int) -> Iterator[np.ndarray]:
    """Request indices grouped by similar length (less padding), in a fixed order."""
    order = np.lexsort((np.arange(lengths.size), lengths))
    b: list[int] = []
    for r in order:
        if b and (len(b) >= batch_size or (len(b) + 1) * lengths[r] > max_batch_tokens):
            yield np.asarray(b)
            b = []
        b.append(int(r))
    if b:
        yield np.asarray(b)


def _forward(model, reqs: list[np.ndarray], b: np.ndarray, lengths: np.ndarray, pad_id: int,  # noqa: ANN001
             device: str) -> int:
    """One right-padded forward pass over requests ``b``; returns the padded width."""
    import torch

    width = int(lengths[b].max())
    x = np.full((b.size, width), pad_id, dtype=np.int64)
    mask = np.zeros((b.size, width), dtype=np.int64)
    for i, r in enumerate(b):
        x[i, :lengths[r]] = reqs[r]
        mask[i, :lengths[r]] = 1
    # the routers see every token; the LM head's logits are not needed, so only the last position's are made
    model(input_ids=torch.from_numpy(x).to(device), attention_mask=torch.from_numpy(mask).to(device),
          use_cache=False, logits_to_keep=1)
    return width


def run_requests(model, layers: list[MoeLayer], reqs: list[np.ndarray], *, batch_size: int,  # noqa: ANN001
                 pad_id: int, device: str | None = None, progress: bool = True,
                 max_batch_tokens: int = 1 << 16) -> tuple[list[np.ndarray], list[np.ndarray], float]:
    """Run each request (token ids) in one forward pass, batched; return per-request
    ``[len, layers, k]`` expert ids and weights (sorted per the contract) and tokens/s. Inputs go to
    ``device``, by default where the model's embedding runs."""
    import torch

    device = device or input_device(model)
    L, k = len(layers), layers[0].top_k
    lengths = np.asarray([len(r) for r in reqs])
    ex_out: list[np.ndarray] = [None] * len(reqs)  # type: ignore[list-item]
    w_out: list[np.ndarray] = [None] * len(reqs)  # type: ignore[list-item]
    total, done, t0 = int(lengths.sum()), 0, time.perf_counter()
    bar = _progress(total, progress)
    with RouterRecorder(layers) as rec, torch.inference_mode():
        for b in _batches(lengths, batch_size, max_batch_tokens):
            width = _forward(model, reqs, b, lengths, pad_id, device)
            per_layer = rec.pop()
            for j, (idx, w) in enumerate(per_layer):
                if idx.shape != (b.size * width, k):
                    raise CaptureError(f"router of MoE layer {j} gave top-k shape {idx.shape}, "
                                       f"expected {(b.size * width, k)}")
            ids = np.stack([p[0] for p in per_layer], 1).reshape(b.size, width, L, k)
            ws = np.stack([p[1] for p in per_layer], 1).reshape(b.size, width, L, k)
            for i, r in enumerate(b):
                ex_out[r], w_out[r] = sort_topk(ids[i, :lengths[r]], ws[i, :lengths[r]])
            n = int(lengths[b].sum())
            done += n
            bar(done)
    rate = total / max(time.perf_counter() - t0, 1e-9)
    return ex_out, w_out, rate


def _progress(total: int, enabled: bool):  # noqa: ANN202
    """Log progress at every 10% (logs are files; a redrawing bar would be noise in them)."""
    state = {"next": 0.1, "t0": time.perf_counter()}

    def update(done: int) -> None:
        if enabled and done >= state["next"] * total:
            rate = done / max(time.perf_counter() - state["t0"], 1e-9)
            log.info("capture %3.0f%%: %d/%d tokens, %.0f tokens/s", 100 * done / total, done, total, rate)
            while state["next"] * total <= done:
                state["next"] += 0.1
    return update


def capture(model, tokenizer, corpus: pl.DataFrame, *, source_id: str, concurrency: int,  # noqa: ANN001
            seq_len: int, batch_size: int, seed: int, device: str | None = None, dtype: str | None = None,
            max_iterations: int | None = None, parts: tuple[str, ...] = ("train", "heldout"),
            config: dict | None = None, progress: bool = True, arrival: str = "shuffled",
            phase_requests: int = 128) -> Captured:
    """Capture the stream's routing (see the module docstring).

    The model runs where it was loaded, on one device or spread by a device map: the token ids go where its
    embedding runs, so ``device`` (like ``dtype``) is not used; both stay for callers that pass them. The
    metadata records that device's kind and, with a device map, every device the model spans."""
    layers = moe_layers(model)
    device = input_device(model)
    ks = {ml.top_k for ml in layers}
    es = {ml.num_experts for ml in layers}
    if len(ks) != 1 or len(es) != 1:
        raise CaptureError(f"{source_id}: MoE layers differ in top_k {ks} or num_experts {es}")
    reqs, domains = make_requests(corpus, tokenizer, seq_len, seed, parts, arrival, phase_requests)
    st = mstream.schedule(np.asarray([len(r.ids) for r in reqs]), concurrency, max_iterations)
    # Only the prefix of each request that lands in the stream needs a forward pass.
    used = np.zeros(len(reqs), np.int64)
    np.maximum.at(used, st.request, st.pos + 1)
    active = np.flatnonzero(used)
    log.info("%s: %d requests, %d iterations x %d = %d tokens, %d MoE layers (E=%d, k=%d)", source_id,
             active.size, st.iterations, concurrency, st.n_tokens, len(layers), es.pop(), ks.pop())
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ex, w, rate = run_requests(model, layers, [reqs[r].ids[:used[r]] for r in active],
                               batch_size=batch_size, device=device, pad_id=pad, progress=progress)
    slot = np.full(len(reqs), -1)
    slot[active] = np.arange(active.size)
    start = np.concatenate([[0], np.cumsum(used[active])])
    rows = start[slot[st.request]] + st.pos
    experts = np.concatenate(ex)[rows].astype(np.uint16)
    weights = np.concatenate(w)[rows].astype(np.float32)
    token = np.concatenate([reqs[r].ids[:used[r]] for r in active])[rows]
    per_req = np.asarray([(r.doc, r.offset, r.doc_len) for r in reqs], dtype=np.int64)[st.request]
    doc, pos, doc_len = per_req[:, 0], per_req[:, 1] + st.pos, per_req[:, 2]
    dom_of_doc = dict(zip(corpus.get_column("doc").to_list(),
                          corpus.get_column("domain").cast(pl.String).to_list(), strict=True))
    code = {d: i for i, d in enumerate(domains)}
    domain_code = np.asarray([code[dom_of_doc[int(d)]] for d in doc], dtype=np.int32)
    mcfg = model.config
    meta = TraceMeta(
        source_kind="captured", source_id=source_id, num_experts=int(layers[0].num_experts),
        top_k=int(layers[0].top_k), n_moe_layers=len(layers), concurrency=concurrency,
        domains=tuple(domains), layer_index=tuple(ml.decoder_index for ml in layers),
        shared_experts=shared_experts(mcfg), capture_device=device.type,
        capture_dtype=str(next(model.parameters()).dtype).removeprefix("torch."),
        config={"model_type": mcfg.model_type, "seq_len": seq_len, "batch_size": batch_size,
                "seed": seed, "parts": list(parts), "arrival": arrival,
                **({"phase_requests": phase_requests} if arrival != "shuffled" else {}), **placement(model),
                **(config or {})})
    return Captured(meta, st, doc.astype(np.uint32), pos.astype(np.uint32), token.astype(np.uint32),
                    domain_code, 2 * pos >= doc_len, experts, weights, rate)


def proxy_routing(layers: list[MoeLayer], n_tokens: int, seed: int, hidden_size: int,
                  chunk: int = 1 << 15) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of each router on N(0, 1) hidden states: ``[n_tokens, layers, k]`` ids and weights. Each
    router runs where it lives (a device map may spread them over GPUs); the draws are made on the CPU, so
    they do not depend on where."""
    import torch

    L, k = len(layers), layers[0].top_k
    ex = np.empty((n_tokens, L, k), np.uint16)
    ws = np.empty((n_tokens, L, k), np.float32)
    gen = torch.Generator().manual_seed(int(seed))
    with torch.inference_mode():
        for j, ml in enumerate(layers):
            dtype, device = ml.gate.weight.dtype, module_device(ml.gate)
            for s in range(0, n_tokens, chunk):
                n = min(chunk, n_tokens - s)
                h = torch.randn(n, hidden_size, generator=gen).to(device=device, dtype=dtype)
                _, w, idx = ml.gate(h)
                i2, w2 = sort_topk(idx.cpu().numpy(), w.float().cpu().numpy())
                ex[s:s + n, j], ws[s:s + n, j] = i2, w2
    return ex, ws


def proxy_trace(trace, model, seed: int, source_id: str):  # noqa: ANN001, ANN201
    """The gaussian-input control for a captured :class:`moelab.traces.Trace`: the same stream
    (tokens, documents, domains, splits), routing from ``model``'s routers on N(0, 1) inputs.
    Returns (meta, table)."""
    layers = moe_layers(model)
    m = trace.meta
    if len(layers) != m.n_moe_layers or layers[0].top_k != m.top_k or layers[0].num_experts != m.num_experts:
        raise CaptureError(f"{source_id}: the model's MoE layers do not match the captured trace "
                           f"{m.source_id} (layers/top_k/num_experts)")
    ex, ws = proxy_routing(layers, trace.n_tokens, seed, int(model.config.hidden_size))
    meta = TraceMeta(**{**m.__dict__, "source_kind": "proxy", "source_id": source_id,
                        "config": {**m.config, "proxy": "gaussian N(0,1) hidden states", "proxy_seed": seed}})
    return meta, build_table(meta, **trace.token_columns(), experts=ex, weights=ws)


def plain_forward_rate(model, reqs: list[np.ndarray], *, batch_size: int, pad_id: int,  # noqa: ANN001
                       device: str | None = None) -> float:
    """Tokens/s of the same batched forward passes without hooks (the capture overhead baseline)."""
    import torch

    device = device or input_device(model)
    lengths = np.asarray([len(r) for r in reqs])
    t0 = time.perf_counter()
    with torch.inference_mode():
        for b in _batches(lengths, batch_size, 1 << 16):
            _forward(model, reqs, b, lengths, pad_id, device)
    return float(lengths.sum()) / max(time.perf_counter() - t0, 1e-9)


def summary_row(cap: Captured) -> dict:
    """One row of the capture summary table (deterministic values only: no timings)."""
    m = cap.meta
    return {"trace": m.source_id, "source_kind": m.source_kind,
            "model_type": m.config.get("model_type", ""), "num_experts": m.num_experts,
            "top_k": m.top_k, "moe_layers": m.n_moe_layers, "shared_experts": m.shared_experts,
            "tokens": cap.stream.n_tokens, "iterations": cap.stream.iterations,
            "documents": int(np.unique(cap.doc).size), "domains": len(m.domains),
            "device": m.capture_device, "dtype": m.capture_dtype}



def device_name(device: str) -> str:
    """A readable name of the capture device (GPU model or the CPU's)."""
    import platform

    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return platform.processor() or platform.machine()
