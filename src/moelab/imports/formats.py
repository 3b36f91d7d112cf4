"""The import formats: which kind of data each gives and which config keys it takes.

A format lacks some facts (the logical expert count, top-k, how many rank files to expect, the
physical-to-logical map, how many tokens make an iteration); the config entry supplies them, and only the keys a
format can use are accepted, so a misplaced key is an error instead of being silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FormatInfo:
    """One format: ``kind`` is ``hotness`` or ``trace``; ``required`` and ``optional`` are the config keys it
    takes besides ``name``, ``format`` and ``path``; ``path`` says whether ``path`` is a file or a folder."""

    kind: str
    path: str
    required: frozenset[str]
    optional: frozenset[str]
    summary: str

    @property
    def keys(self) -> frozenset[str]:
        return self.required | self.optional


def _f(kind: str, path: str, required: set[str], optional: set[str], summary: str) -> FormatInfo:
    return FormatInfo(kind, path, frozenset(required), frozenset(optional), summary)


_TRACE = {"concurrency", "domain"}

FORMATS: dict[str, FormatInfo] = {
    "competition-npy": _f("hotness", "file", set(), {"experts"},
                          "placement competition .npy [iterations, layers, experts]"),
    "sglang-stat": _f("hotness", "file", set(), {"experts", "moe_layers", "ring_start"},
                      "SGLang recorder, stat mode: logical_count [passes, layers, logical]"),
    "sglang-per-pass": _f("hotness", "file or folder", set(),
                          {"experts", "ep_size", "physical_to_logical", "moe_layers"},
                          "SGLang recorder, per_pass mode: per-rank records of global_physical_count"),
    "trtllm-expert-statistic": _f("hotness", "folder", set(), {"experts", "top_k", "ep_size", "physical_to_logical"},
                                  "TensorRT-LLM expert statistic: meta_info.json + rank{r}.safetensors"),
    "vllm-expert-load": _f("hotness", "file", {"physical_to_logical"}, {"experts"},
                           "vLLM EPLB expert_load_window [window, layers, physical] (torch.save or safetensors)"),
    "sglang-per-token": _f("trace", "file or folder", set(),
                           {"experts", "top_k", "ep_size", "physical_to_logical", "moe_layers"} | _TRACE,
                           "SGLang recorder, per_token mode: per-rank records of topk_ids_of_layer"),
    "sglang-routed-experts": _f("trace", "file", {"top_k"},
                                {"experts", "physical_to_logical", "moe_layers", "num_hidden_layers"} | _TRACE,
                                "SGLang responses with meta_info.routed_experts, one JSON object a line"),
    "flame-moe": _f("trace", "folder", set(), {"experts", "top_k"} | _TRACE,
                    "FLAME-MoE traces: {layer}.parquet with scores and indices per token"),
}

KINDS = ("hotness", "trace")
