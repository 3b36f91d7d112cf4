"""A model of serving hotness ``[iterations, layers, experts]``, for the dynamic placement evaluation
(``docs/stages/placement.md``; fitted per dataset in :mod:`moelab.placement.workload_fit`).

Per layer, expert popularity is ``softmax(theta)``, ``theta`` the sum of up to three stationary parts, each with
its own time scale (what makes a placement go stale, ``docs/stages/placement.md`` argues from the published
readings):

- ``skew``: the standard deviation of the slow part, an Ornstein-Uhlenbeck process relaxing at ``drift`` per
  iteration (``theta`` keeps ``exp(-drift)`` of it from one iteration to the next; 0 = frozen);
- ``burst``, ``burst_time``: a fast Ornstein-Uhlenbeck part with standard deviation ``burst`` and correlation
  time ``burst_time`` iterations: the requests in flight, which change as requests finish and others start.
  A placement fitted on any window is stale by this part at once, by about as much after 256 iterations
  as after 4,096;
- ``phase``, ``dwell``, ``mixes``: the request mix. ``mixes`` random popularity offsets (standard deviation
  ``phase``); the trace sits in one at a time and switches to another with probability ``1 / dwell`` per
  iteration, in every layer at once. A placement goes stale by this part more the longer it serves;
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
    drift: float = 0.0
    burst: float = 0.0
    burst_time: float = 1.0
    phase: float = 0.0
    dwell: float = 1.0
    mixes: int = 1

    def __post_init__(self) -> None:
        for name in ("layers", "experts", "top_k", "iterations", "mixes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: expected a positive integer")
        if self.skew < 0 or self.tokens <= 0 or self.drift < 0:
            raise ValueError(f"skew={self.skew}, tokens={self.tokens}, drift={self.drift}: expected skew >= 0, "
                             f"tokens > 0, drift >= 0")
        if self.burst < 0 or self.phase < 0 or not self.burst_time > 0 or not self.dwell > 0:
            raise ValueError(f"burst={self.burst}, burst_time={self.burst_time}, phase={self.phase}, "
                             f"dwell={self.dwell}: expected burst >= 0, burst_time > 0, phase >= 0, dwell > 0")

    def scaled(self, drift_scale: float) -> HotnessModel:
        """The same model with every rate of change multiplied by ``drift_scale`` (the slow drift, the bursts'
        turnover and the mix's switching; 0 freezes each part where it starts). How unequal experts are in
        any one iteration is unchanged."""
        if drift_scale < 0:
            raise ValueError(f"drift_scale={drift_scale}: expected >= 0")
        slower = float("inf") if drift_scale == 0 else 1.0 / drift_scale
        return replace(self, drift=self.drift * drift_scale, burst_time=self.burst_time * slower,
                       dwell=self.dwell * slower)

    def fields(self) -> dict:
        """The parameters as a record (what a model file stores)."""
        return {f: getattr(self, f) for f in FIELDS}

    def generate(self, seed: int) -> np.ndarray:
        """Hotness ``[iterations, layers, experts]`` (float32). Deterministic in (model, seed)."""
        return generate(self, Draws(seed, self.iterations, self.layers, self.experts, self.mixes))

    def generate_with_expected(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """``generate(seed)`` and, on the same draws, each iteration's expected counts (``top_k * tokens * p``,
        the popularity without the sampling noise): what a placement could know at best before the
        iteration's tokens arrive."""
        draws = Draws(seed, self.iterations, self.layers, self.experts, self.mixes)
        expected = expected_counts(self, draws)
        return _sampled(expected.copy(), draws), expected


FIELDS = ("layers", "experts", "top_k", "iterations", "skew", "tokens", "drift", "burst", "burst_time", "phase",
          "dwell", "mixes")


class Draws:
    """The random numbers behind one hotness array, each from its own seeded stream: the slow part's start and
    innovations, the sampling noise, the bursts' start and innovations, the mixes' offsets and the switching
    path. Large arrays are drawn on first use, so a model without a part costs nothing for it."""

    def __init__(self, seed: int, iterations: int, layers: int, experts: int, mixes: int = 1):
        self.seed, self.shape, self.mixes = seed, (iterations, layers, experts), mixes
        self.start = np.random.default_rng([seed, 0]).standard_normal((layers, experts))
        self._cache: dict[str, np.ndarray] = {}

    def _normal(self, name: str, stream: int, shape: tuple) -> np.ndarray:
        if name not in self._cache:
            self._cache[name] = np.random.default_rng([self.seed, stream]).standard_normal(shape, dtype=np.float32)
        return self._cache[name]

    @property
    def innovation(self) -> np.ndarray:
        return self._normal("innovation", 1, self.shape)

    @property
    def noise(self) -> np.ndarray:
        return self._normal("noise", 2, self.shape)

    @property
    def burst(self) -> np.ndarray:
        return self._normal("burst", 3, self.shape)

    @property
    def offsets(self) -> np.ndarray:
        return self._normal("offsets", 4, (self.mixes, *self.shape[1:]))

    def path(self, dwell: float) -> np.ndarray:
        """The mix in force at each iteration: start in mix 0, switch with probability ``1 / dwell`` per
        iteration to one of the others (uniformly)."""
        I, k = self.shape[0], self.mixes
        if k == 1 or not np.isfinite(dwell):
            return np.zeros(I, np.int64)
        rng = np.random.default_rng([self.seed, 5])
        switch = rng.random(I) < 1.0 / dwell  # every iteration when dwell <= 1
        switch[0] = False
        step = np.where(switch, rng.integers(1, k, I), 0)
        return np.cumsum(step) % k


def generate(model: HotnessModel, draws: Draws) -> np.ndarray:
    """Hotness from ``model`` on given draws (the fit reuses one set of draws for every parameter set)."""
    return _sampled(expected_counts(model, draws), draws)


def expected_counts(model: HotnessModel, draws: Draws) -> np.ndarray:
    """Each iteration's expected counts ``top_k * tokens * p`` on given draws, before the sampling noise."""
    I, L, E = model.iterations, model.layers, model.experts
    if draws.shape != (I, L, E) or draws.mixes != model.mixes:
        raise ValueError(f"draws of shape {draws.shape} with {draws.mixes} mixes for a model of shape {(I, L, E)} "
                         f"with {model.mixes}")
    keep, step = _ou(1.0 / model.drift if model.drift > 0 else float("inf"), model.skew)
    fast_keep, fast_step = _ou(model.burst_time, model.burst)
    mix = model.phase * draws.offsets if model.phase > 0 else None
    path = draws.path(model.dwell) if mix is not None else None
    theta = np.empty((I, L, E), np.float32)
    state = (model.skew * draws.start).astype(np.float32)
    fast = model.burst * draws.burst[0] if model.burst > 0 else None
    for i in range(I):
        if i and step:
            state = keep * state + step * draws.innovation[i]
        theta[i] = state
        if fast is not None:
            if i:
                fast *= fast_keep
                fast += fast_step * draws.burst[i]
            theta[i] += fast
        if mix is not None:
            theta[i] += mix[path[i]]
    theta -= theta.max(axis=2, keepdims=True)
    np.exp(theta, out=theta)
    theta *= np.float32(model.top_k * model.tokens) / theta.sum(axis=2, keepdims=True)  # expected counts
    return theta


def _ou(time: float, std: float) -> tuple[float, float]:
    """An Ornstein-Uhlenbeck step with correlation ``time`` iterations: (kept share, innovation scale)."""
    keep = float(np.exp(-1.0 / time)) if np.isfinite(time) else 1.0
    return np.float32(keep), np.float32(std * np.sqrt(max(0.0, 1.0 - keep * keep)))


def _sampled(expected: np.ndarray, draws: Draws) -> np.ndarray:
    """The counts: expected plus a Poisson-like noise of the same variance, floored at 0."""
    counts = expected + np.sqrt(expected) * draws.noise
    np.maximum(counts, 0, out=counts)
    return counts
