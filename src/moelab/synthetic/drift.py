"""Popularity that moves over time, because serving load moves.

Two mechanisms, combinable: a mean-reverting random walk of per-expert log-rates (slow drift),
and phase switches between profiles (the ranking of experts reshuffles every ``phase_every``
iterations, cycling through ``phases`` profiles).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Drift:
    walk_sigma: float = 0.0  # std of the per-iteration log-rate step
    walk_reversion: float = 0.0  # pull back towards the base profile per iteration (0 = pure walk)
    phase_every: int = 0  # iterations between phase switches (0 = never)
    phases: int = 1  # distinct profiles cycled through

    def __post_init__(self) -> None:
        if self.walk_sigma < 0 or not 0 <= self.walk_reversion < 1:
            raise ValueError("drift needs walk_sigma >= 0 and 0 <= walk_reversion < 1")
        if self.phase_every < 0 or self.phases < 1:
            raise ValueError("drift needs phase_every >= 0 and phases >= 1")

    @property
    def is_static(self) -> bool:
        return self.walk_sigma == 0 and (self.phase_every == 0 or self.phases == 1)


def drifting_profile(rng: np.random.Generator, base: np.ndarray, iterations: int, drift: Drift) -> np.ndarray:
    """Per-iteration popularity ``[I, E]`` (rows sum to 1) from a base profile ``[E]``."""
    base = np.asarray(base, dtype=np.float64)
    E = base.size
    if drift.is_static:
        return np.broadcast_to(base / base.sum(), (iterations, E))
    profiles = [base] + [base[rng.permutation(E)] for _ in range(drift.phases - 1)]
    if drift.phase_every and drift.phases > 1:
        phase = (np.arange(iterations) // drift.phase_every) % drift.phases
        p = np.stack(profiles)[phase]
    else:
        p = np.broadcast_to(base, (iterations, E)).copy()
    if drift.walk_sigma > 0:
        steps = rng.normal(0.0, drift.walk_sigma, size=(iterations, E))
        # w[i] = (1 - theta) * w[i-1] + step[i]: an AR(1) filter along time, vectorised over experts
        from scipy.signal import lfilter  # imported here: the workflow imports this module on every start

        walk = lfilter([1.0], [1.0, -(1.0 - drift.walk_reversion)], steps, axis=0)
        p = p * np.exp(walk - walk.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)
