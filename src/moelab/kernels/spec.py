"""The kernel stage's config block ``kernels`` as a frozen spec, with the checks that need only the block
(a light module: the workflow builds it at start). What ties it to other blocks (timed traces exist, shapes
match their routing) is checked in ``moelab.config``; the benchmark itself runs on ``bench.BenchSpec``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from moelab.spec import ConfigSpec


@dataclass(frozen=True)
class JaxSpec(ConfigSpec):
    """``kernels.jax``: the JAX/Pallas benchmarks (a subset of the traces and token counts timed in torch)."""

    key = "kernels.jax"
    traces: tuple[str, ...]
    tokens: tuple[int, ...]
    platform: str
    implementations: tuple[str, ...]
    interpret_max_tokens: int
    dense_max_elements: int


@dataclass(frozen=True)
class AlphaSpec(ConfigSpec):
    """``kernels.alpha``: the latency-matched power-law alpha of captured traces, matched against ``draws``
    sampled workloads at each of ``points`` alphas evenly spaced from ``lowest`` to ``highest``."""

    key = "kernels.alpha"
    lowest: float
    highest: float
    points: int
    draws: int
    rounds: int
    iters: int

    def __post_init__(self) -> None:
        for name in ("lowest", "highest"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name}={value!r} must be a number")
        if not 0 < self.lowest < self.highest:
            raise ValueError(f"lowest={self.lowest}, highest={self.highest}: need 0 < lowest < highest (alpha = 0 is "
                             "the generator's round-robin case, not a draw of the power law)")
        for name, least in (("points", 3), ("draws", 2), ("rounds", 1), ("iters", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name}={value!r} must be an integer >= {least}"
                                 + (" (a band over draws needs two)" if name == "draws" else ""))

    def alphas(self) -> list[float]:
        """The grid, ascending (rounded so that a config's 0.05 steps read as such in the tables)."""
        step = (self.highest - self.lowest) / (self.points - 1)
        return [round(self.lowest + i * step, 10) for i in range(self.points)]


@dataclass(frozen=True)
class KernelsSpec(ConfigSpec):
    """Config block ``kernels``."""

    key = "kernels"
    traces: tuple[str, ...]
    shapes: tuple[Any, ...]
    tokens: tuple[int, ...]
    device: str
    dtype: str
    cpu_scale: int
    devices: int
    ep_sizes: tuple[int, ...]
    placements: tuple[str, ...]
    implementations: tuple[str, ...]
    capacity_factor: float
    warmup: int
    iters: int
    graphs: bool
    profile: bool = False
    jax: JaxSpec | None = None
    alpha: AlphaSpec | None = None

    def __post_init__(self) -> None:
        for ep in self.ep_sizes:
            if self.devices % ep:
                raise ValueError(f"ep_sizes: {ep} does not divide kernels.devices={self.devices}")
        if isinstance(self.jax, dict):
            object.__setattr__(self, "jax", JaxSpec.from_config(self.jax))
        if isinstance(self.alpha, dict):
            object.__setattr__(self, "alpha", AlphaSpec.from_config(self.alpha))
        if self.jax:
            for key in ("traces", "tokens"):
                extra = sorted(set(getattr(self.jax, key)) - set(getattr(self, key)))
                if extra:
                    raise ValueError(f"jax.{key}: {extra} not in kernels.{key} (workloads are cut once)")
