"""A model of serving hotness ``[iterations, layers, experts]`` with four parameters, for the dynamic
placement evaluation (``docs/stages/placement.md``; calibrated in :mod:`moelab.placement.calibration`).

Per layer, expert popularity is ``softmax(theta)`` with ``theta`` a stationary Ornstein-Uhlenbeck process:

- ``skew``: the standard deviation of ``theta`` (how unequal experts are, the same at every iteration);
- ``drift``: the process's relaxation rate per iteration (``theta`` keeps ``exp(-drift)`` of its value
  from one iteration to the next; 0 = a frozen popularity). Scaling ``drift`` changes how fast
  popularity moves, never how skewed it is;
- ``tokens``: tokens per iteration. An iteration's counts are ``top_k * tokens * p`` plus a Poisson-like
  sampling noise of the same variance (Gaussian, so that the counts are smooth in the parameters,
  which the fit needs), floored at 0;
- ``iterations``: the trace length.

Layers are independent draws. The random numbers depend only on the seed and the shape, never on
the parameters, so two parameter sets are compared on the same draws (common random numbers).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class HotnessModel:
    layers: int
    experts: int
    top_k: int
    iterations: int
    skew: float
    tokens: float
    drift: float

    def __post_init__(self) -> None:
        for name in ("layers", "experts", "top_k", "iterations"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: expected a positive integer")
        if self.skew < 0 or self.tokens <= 0 or self.drift < 0:
            raise ValueError(f"skew={self.skew}, tokens={self.tokens}, drift={self.drift}: expected skew >= 0, "
                             f"tokens > 0, drift >= 0")

    def scaled(self, drift_scale: float) -> HotnessModel:
        """The same model with its drift rate multiplied by ``drift_scale``."""
        return replace(self, drift=self.drift * drift_scale)

    def generate(self, seed: int) -> np.ndarray:
        """Hotness ``[iterations, layers, experts]`` (float32). Deterministic in (model, seed)."""
        return generate(self, Draws(seed, self.iterations, self.layers, self.experts))

    def generate_with_expected(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """``generate(seed)`` and, on the same draws, each iteration's expected counts (``top_k * tokens * p``,
        the popularity without the sampling noise): what a placement could know at best before the
        iteration's tokens arrive."""
        draws = Draws(seed, self.iterations, self.layers, self.experts)
        expected = expected_counts(self, draws)
        return _sampled(expected.copy(), draws), expected


class Draws:
    """The standard-normal draws behind one hotness array: the initial state, the drift innovations and
    the sampling noise, each from its own seeded stream."""

    def __init__(self, seed: int, iterations: int, layers: int, experts: int):
        shape = (iterations, layers, experts)
        self.start = np.random.default_rng([seed, 0]).standard_normal((layers, experts))
        self.innovation = np.random.default_rng([seed, 1]).standard_normal(shape, dtype=np.float32)
        self.noise = np.random.default_rng([seed, 2]).standard_normal(shape, dtype=np.float32)


def generate(model: HotnessModel, draws: Draws) -> np.ndarray:
    """Hotness from ``model`` on given draws (the fit reuses one set of draws for every parameter set)."""
    return _sampled(expected_counts(model, draws), draws)


def expected_counts(model: HotnessModel, draws: Draws) -> np.ndarray:
    """Each iteration's expected counts ``top_k * tokens * p`` on given draws, before the sampling noise."""
    I, L, E = model.iterations, model.layers, model.experts
    if draws.noise.shape != (I, L, E):
        raise ValueError(f"draws of shape {draws.noise.shape} for a model of shape {(I, L, E)}")
    keep = float(np.exp(-model.drift))
    step = model.skew * float(np.sqrt(max(0.0, 1.0 - keep * keep)))
    theta = np.empty((I, L, E), np.float32)
    state = model.skew * draws.start
    for i in range(I):
        if i:
            state = keep * state + step * draws.innovation[i]
        theta[i] = state
    theta -= theta.max(axis=2, keepdims=True)
    np.exp(theta, out=theta)
    theta *= np.float32(model.top_k * model.tokens) / theta.sum(axis=2, keepdims=True)  # expected counts
    return theta


def _sampled(expected: np.ndarray, draws: Draws) -> np.ndarray:
    """The counts: expected plus a Poisson-like noise of the same variance, floored at 0."""
    counts = expected + np.sqrt(expected) * draws.noise
    np.maximum(counts, 0, out=counts)
    return counts
