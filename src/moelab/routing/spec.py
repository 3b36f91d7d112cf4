"""The routing stage's config blocks as frozen specs (a light module: the workflow builds them at start).

``routing.capacity`` -> :class:`CapacitySpec`; ``routing.train`` and each ``routing.train_variants`` study ->
:class:`StudySpec`; ``routing.perft`` -> :class:`PerftSpec` (its ``variants`` -> :class:`Variant`).
"""

from __future__ import annotations

from dataclasses import dataclass

from moelab.model_shape import ModelShape, check_schedule
from moelab.routing.names import ARCHS, STRATEGIES
from moelab.spec import ConfigError, ConfigSpec


@dataclass(frozen=True)
class GaussianSpec(ConfigSpec):
    """``routing.capacity.gaussian``: i.i.d. N(0, 1) logits, top-k, ``draws`` seeded batches per E and k."""

    key = "routing.capacity.gaussian"
    experts: tuple[int, ...]
    top_k: tuple[int, ...]
    draws: int

    def __post_init__(self) -> None:
        if not any(k <= E for k in self.top_k for E in self.experts):
            raise ValueError(f"no top_k {list(self.top_k)} fits any experts {list(self.experts)}")


@dataclass(frozen=True)
class CapacitySpec(ConfigSpec):
    """Config block ``routing.capacity``: the capacity-factor sweep's sources, factors and timing."""

    key = "routing.capacity"
    factors: tuple[float, ...]
    batch_tokens: int
    gaussian: GaussianSpec | None
    traces: tuple[str, ...]
    top_k: tuple[int, ...]
    max_batches: int
    hidden: int
    warmup: int
    iters: int

    def __post_init__(self) -> None:
        if isinstance(self.gaussian, dict):
            object.__setattr__(self, "gaussian", GaussianSpec.from_config(self.gaussian))


@dataclass(frozen=True)
class StudySpec(ConfigSpec):
    """Config block ``routing.train`` (and each ``routing.train_variants`` study)."""

    key = "routing.train"

    strategies: tuple[str, ...] = STRATEGIES
    capacity_factors: tuple[float, ...] = (1.0, 1.25)
    seeds: int = 3
    tokenizer: str = "bytes"
    num_experts: int = 8
    top_k: int = 2
    dim: int = 64
    ffn: int = 128
    layers: int = 2
    heads: int = 4
    arch: str = "linear"
    seq_len: int = 128
    batch_size: int = 16
    steps: int = 200
    lr: float = 3e-3
    warmup: int = 20
    aux_loss_coef: float = 0.01
    bias_rate: float = 0.01
    eval_every: int = 50
    eval_batches: int = 4
    heatmap_tokens: int = 64
    device: str = "cpu"

    def __post_init__(self) -> None:
        object.__setattr__(self, "strategies", tuple(self.strategies))
        object.__setattr__(self, "capacity_factors", tuple(float(c) for c in self.capacity_factors))
        unknown = sorted(set(self.strategies) - set(STRATEGIES))
        if unknown:
            raise ValueError(f"strategies {unknown} unknown (known: {list(STRATEGIES)})")
        if self.arch not in ARCHS:
            raise ValueError(f"arch={self.arch!r}: expected one of {list(ARCHS)}")
        if self.tokenizer not in ("bytes", "bpe"):
            raise ValueError(f"tokenizer={self.tokenizer!r}: expected 'bytes' or 'bpe'")
        self.shape(vocab_size=1)  # checks the model's shape (the vocabulary comes with the tokenizer)
        check_schedule(self.steps, self.warmup)
        if self.seeds < 1 or any(c <= 0 for c in self.capacity_factors):
            raise ValueError("seeds must be >= 1 and every capacity factor > 0")
        if self.device not in ("cpu", "cuda", "auto"):
            raise ValueError(f"device={self.device!r}: expected cpu, cuda or auto")
        if self.heatmap_tokens > self.seq_len:
            raise ValueError(f"heatmap_tokens={self.heatmap_tokens} exceeds seq_len={self.seq_len}")

    def shape(self, vocab_size: int) -> ModelShape:
        return ModelShape(vocab_size, self.dim, self.ffn, self.layers, self.heads, self.num_experts, self.top_k,
                          self.seq_len)


KINDS = ("S", "D", "R", "E")  # PERFT-S shared, -D dense, -R routed, -E embedded


@dataclass(frozen=True)
class Variant:
    kind: str
    rank: int = 8
    adapters: int = 1
    top_k: int = 1

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"PERFT kind {self.kind!r}: expected one of {KINDS}")
        if self.rank < 1 or self.adapters < 1 or not 1 <= self.top_k <= self.adapters or (
                self.kind == "R" and self.top_k > self.adapters):
            raise ValueError(f"PERFT-{self.kind}: rank={self.rank}, adapters={self.adapters}, top_k={self.top_k} "
                             f"(need rank, adapters >= 1 and 1 <= top_k <= adapters)")
        if self.kind == "S" and self.adapters != 1:
            raise ValueError("PERFT-S has one adapter (adapters: 1)")

    @property
    def name(self) -> str:
        if self.kind == "R":
            return f"PERFT-R top{self.top_k}/{self.adapters} r{self.rank}"
        if self.kind == "D":
            return f"PERFT-D {self.adapters} r{self.rank}"
        return f"PERFT-{self.kind} r{self.rank}"


@dataclass(frozen=True)
class PerftSpec(ConfigSpec):
    """Config block ``routing.perft``: routed adapters on a frozen ``capture.models`` checkpoint."""

    key = "routing.perft"
    model: str
    domain: str
    variants: tuple[Variant, ...]
    steps: int
    batch_size: int
    seq_len: int
    lr: float
    eval_every: int
    eval_batches: int

    def __post_init__(self) -> None:
        variants, seen = [], set()
        for i, v in enumerate(self.variants):
            raw = v if isinstance(v, dict) else v.__dict__
            where = f"variants[{i}]"
            if isinstance(v, dict):
                if v.get("kind") in ("S", "E") and ("adapters" in v or "top_k" in v):
                    raise ValueError(f"{where}: PERFT-{v['kind']} takes no adapters/top_k (S has one adapter; E "
                                     f"one per base expert, weighted by the base router)")
                if v.get("kind") == "D" and "top_k" in v:
                    raise ValueError(f"{where}: PERFT-D has every adapter active (no top_k)")
                if v.get("top_k", 1) > v.get("adapters", 1):
                    raise ValueError(f"{where}.top_k={v['top_k']} exceeds adapters={v.get('adapters', 1)}")
            key = tuple(sorted(raw.items()))
            if key in seen:
                raise ValueError(f"{where} repeats an earlier variant")
            seen.add(key)
            try:
                variants.append(v if isinstance(v, Variant) else Variant(**v))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{where}: {exc}") from None
        object.__setattr__(self, "variants", tuple(variants))


def train_variants(routing: dict) -> dict[str, dict]:
    """name -> ``routing.train`` with the variant's keys overriding it (``routing.train_variants``)."""
    out: dict[str, dict] = {}
    for i, v in enumerate(routing.get("train_variants") or []):
        name = v.get("name")
        if not name or name == "base" or name in out or not str(name).replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"routing.train_variants[{i}].name={name!r}: give each variant a distinct name of "
                              f"letters, digits, - and _ (not 'base')")
        out[name] = {**routing["train"], **{k: val for k, val in v.items() if k != "name"}}
    return out
