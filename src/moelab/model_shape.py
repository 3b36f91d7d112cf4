"""The shape of a small MoE language model, with its checks: shared by the embedded checkpoint (config key
``tiny``, Hugging Face's field names) and the routing study's model (``routing.train``), so both are checked
by one rule and errors name the key as the config spells it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ModelShape:
    vocab_size: int
    dim: int
    ffn: int
    layers: int
    heads: int
    num_experts: int
    top_k: int
    seq_len: int
    # field -> the config key it came from (for error messages only)
    keys: tuple[tuple[str, str], ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        key = dict(self.keys)

        def k(name: str) -> str:
            return key.get(name, name)

        for name in ("vocab_size", "dim", "ffn", "layers", "heads", "num_experts", "top_k", "seq_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"{k(name)}={getattr(self, name)} must be at least 1")
        if self.top_k > self.num_experts:
            raise ValueError(f"{k('top_k')}={self.top_k} exceeds {k('num_experts')}={self.num_experts}")
        if self.dim % self.heads:
            raise ValueError(f"{k('dim')}={self.dim} is not divisible by {k('heads')}={self.heads}")


def check_schedule(steps: int, warmup: int, prefix: str = "") -> None:
    """A learning-rate warm-up must end before training does."""
    if warmup >= steps:
        raise ValueError(f"{prefix}warmup={warmup} must be below {prefix}steps={steps}")
