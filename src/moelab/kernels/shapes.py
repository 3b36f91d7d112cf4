"""Expert-layer shapes: a built-in table of published MoE models, or a checkpoint's ``config.json``.

A shape fixes the dimensions of one routed expert (hidden, ffn, activation) and the routing arity (experts,
top-k). The workload (which token goes to which expert) comes from a trace with the same experts and top-k."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

ACTIVATIONS = ("silu", "gelu", "swigluoai")


class ShapeError(ValueError):
    """A shape name or model config that cannot describe an MoE layer."""


@dataclass(frozen=True)
class MoEShape:
    name: str
    hidden: int
    ffn: int  # intermediate size of one routed expert
    experts: int
    top_k: int
    shared_experts: int = 0
    shared_ffn: int = 0  # intermediate size of the shared expert(s), all of them together
    activation: str = "silu"  # gated: act(x W_gate) * (x W_up), then W_down
    scale: int = 1  # hidden and ffn divided by this (small CPU runs say so in every row)

    def __post_init__(self) -> None:
        for key in ("hidden", "ffn", "experts", "top_k", "scale"):
            if int(getattr(self, key)) < 1:
                raise ShapeError(f"shape {self.name!r}: {key}={getattr(self, key)} must be >= 1")
        if self.top_k > self.experts:
            raise ShapeError(f"shape {self.name!r}: top_k={self.top_k} exceeds experts={self.experts}")
        if self.activation not in ACTIVATIONS:
            raise ShapeError(f"shape {self.name!r}: activation {self.activation!r}, expected one of {ACTIVATIONS}")

    @property
    def label(self) -> str:
        return self.name if self.scale == 1 else f"{self.name} (hidden, ffn / {self.scale})"

    def scaled(self, divisor: int) -> "MoEShape":
        """The same routing with hidden and ffn divided by ``divisor``, CPU-sized; never below hidden 128 and
        ffn 64 (or the shape's own, if smaller), so the tiny checkpoint keeps its size."""
        hidden = max(min(self.hidden, 128), self.hidden // divisor)
        ffn = max(min(self.ffn, 64), self.ffn // divisor)
        if divisor == 1 or (hidden, ffn) == (self.hidden, self.ffn):
            return self
        return replace(self, hidden=hidden, ffn=ffn, shared_ffn=self.shared_ffn // divisor if self.shared_ffn else 0,
                       scale=divisor)

    def to_dict(self) -> dict:
        return asdict(self)


# Published configs (hidden_size, moe_intermediate_size or intermediate_size, routed experts, top-k).
BUILTIN: dict[str, MoEShape] = {s.name: s for s in (
    MoEShape("OLMoE-1B-7B", hidden=2048, ffn=1024, experts=64, top_k=8),
    MoEShape("Mixtral-8x7B", hidden=4096, ffn=14336, experts=8, top_k=2),
    MoEShape("Qwen3-30B-A3B", hidden=2048, ffn=768, experts=128, top_k=8),
    MoEShape("Qwen3-235B-A22B", hidden=4096, ffn=1536, experts=128, top_k=8),
    MoEShape("DeepSeek-V3", hidden=7168, ffn=2048, experts=256, top_k=8, shared_experts=1, shared_ffn=2048),
)}

_ACT_NAMES = {"silu": "silu", "swish": "silu", "gelu": "gelu", "gelu_new": "gelu", "gelu_pytorch_tanh": "gelu",
              "swigluoai": "swigluoai"}


def from_hf_config(cfg: dict, name: str, where: str = "config.json") -> MoEShape:
    """The routed-expert shape of a transformers MoE config (OLMoE, Mixtral, Qwen2/3-MoE, DeepSeek-V2/3,
    gpt-oss key spellings)."""
    def first(*keys: str) -> int | None:
        for k in keys:
            if cfg.get(k) is not None:
                return int(cfg[k])
        return None

    hidden = first("hidden_size")
    experts = first("num_local_experts", "num_experts", "n_routed_experts")
    top_k = first("num_experts_per_tok", "moe_topk")
    ffn = first("moe_intermediate_size", "intermediate_size")
    missing = [k for k, v in (("hidden_size", hidden), ("num_experts/num_local_experts/n_routed_experts", experts),
                              ("num_experts_per_tok", top_k), ("moe_intermediate_size/intermediate_size", ffn))
               if v is None]
    if missing:
        raise ShapeError(f"{where}: not an MoE config, it lacks {missing}")
    shared = first("n_shared_experts") or 0
    shared_ffn = first("shared_expert_intermediate_size") or (shared * ffn)
    if cfg.get("shared_expert_intermediate_size") and not shared:
        shared = 1  # Qwen2-MoE: one shared expert of its own size
    act = str(cfg.get("hidden_act", "silu"))
    if cfg.get("model_type") == "gpt_oss":
        act = "swigluoai"
    if act not in _ACT_NAMES:
        raise ShapeError(f"{where}: hidden_act {act!r} is not one of {sorted(_ACT_NAMES)}")
    return MoEShape(name, hidden=hidden, ffn=ffn, experts=experts, top_k=top_k, shared_experts=shared,
                    shared_ffn=shared_ffn if shared else 0, activation=_ACT_NAMES[act])


def resolve(entry: str | dict, tiny: dict | None = None) -> MoEShape:
    """A config entry: a built-in name, ``tiny`` (the embedded checkpoint's config section), a path to a
    checkpoint directory or ``config.json``, or an explicit ``{name, hidden, ffn, experts, top_k, ...}``."""
    if isinstance(entry, dict):
        try:
            return MoEShape(**entry)
        except TypeError as exc:
            raise ShapeError(f"kernels.shapes entry {entry}: {exc}") from None
    if entry in BUILTIN:
        return BUILTIN[entry]
    if entry == "tiny":
        if tiny is None:
            raise ShapeError("kernels.shapes: 'tiny' needs the config's tiny section")
        return MoEShape("tiny", hidden=int(tiny["hidden_size"]), ffn=int(tiny["intermediate_size"]),
                        experts=int(tiny["num_experts"]), top_k=int(tiny["top_k"]))
    path = Path(entry)
    if path.is_dir():
        path = path / "config.json"
    if path.is_file():
        try:
            cfg = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ShapeError(f"{path}: not valid JSON ({exc})") from None
        return from_hf_config(cfg.get("text_config", cfg), path.parent.name or str(path), str(path))
    raise ShapeError(f"kernels.shapes: {entry!r} is neither a built-in shape {sorted(BUILTIN)}, 'tiny', "
                     f"nor a checkpoint directory or config.json")
