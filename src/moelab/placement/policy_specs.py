"""The dynamic policies as configured: one block each, read by every dynamic evaluation.

- ``placement.eplb`` (:class:`EplbSpec`): DS-EPLB's cadence;
- ``placement.policy`` (:class:`PolicySpec`): moelab's policy, its cadence and its settings;
- ``placement.score`` (:class:`ScoreSpec`): the competition's score constants.

The captured-trace and imported-load evaluation (``placement.dynamic``), the serving-scale grid
(``placement.grid``), the imported grid and ``benchmarks/bench_dynamic.py`` all build their simulator specs and
policies here (:class:`DynamicPolicies`), so a policy is the same wherever it runs. One first-call rule holds
everywhere: the simulator first calls a policy once its own call interval has passed
(:mod:`moelab.placement.simulator`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from moelab.placement import policies
from moelab.placement import simulator as sim
from moelab.spec import ConfigSpec

POLICY_NAMES = ("Default", "DS-EPLB", "moelab")


@dataclass(frozen=True)
class EplbSpec(ConfigSpec):
    """Config block ``placement.eplb``: DS-EPLB called every ``call_interval`` iterations (after its last
    redeployment) on the past ``window`` iterations."""

    key = "placement.eplb"
    call_interval: int
    window: int

    def __post_init__(self) -> None:
        if self.call_interval < 1 or self.window < 1:
            raise ValueError(f"call_interval={self.call_interval}, window={self.window}: expected positive values")


@dataclass(frozen=True)
class PolicySpec(ConfigSpec):
    """Config block ``placement.policy``: moelab's policy (:func:`moelab.placement.policies.moelab_policy`),
    called every ``call_interval`` iterations on the past ``window`` iterations, smoothed with ``halflife``."""

    key = "placement.policy"
    call_interval: int
    window: int
    halflife: float
    accept: str
    min_gain: float
    horizon_calls: float
    max_moves: int
    recount_steps: int  # the copy-count search (policies.recount): 0 = off, its time is the delay budget here

    def __post_init__(self) -> None:
        if self.accept not in ("target", "pays"):
            raise ValueError(f"accept={self.accept!r}: expected 'target' or 'pays'")
        if self.recount_steps < 0:
            raise ValueError(f"recount_steps={self.recount_steps}: expected >= 0")
        if self.call_interval < 1 or self.window < 1 or self.halflife <= 0:
            raise ValueError(f"call_interval={self.call_interval}, window={self.window}, halflife={self.halflife}: "
                             f"expected positive values")

    def settings(self) -> dict:
        """The policy's settings but its cadence (``call_interval``, ``window``: the simulator's, or in the
        competition the evaluator's): the keyword arguments of ``moelab_policy``."""
        return {"halflife": self.halflife, "accept": self.accept, "min_gain": self.min_gain,
                "horizon_calls": self.horizon_calls, "max_moves": self.max_moves, "recount_steps": self.recount_steps}

    def build(self, spec: sim.SimSpec, iterations: int) -> sim.Policy:
        """The policy as a simulator callable on ``spec`` (a trace of ``iterations`` iterations)."""
        return policies.moelab_policy(spec, total_iterations=iterations, **self.settings())


@dataclass(frozen=True)
class SubmissionSpec(ConfigSpec):
    """Config block ``placement.submission``: moelab's policy as a competition submission. The evaluator sets
    the cadence (every policy at its collection interval, 1,024 in the published runs, on that window), so only
    the settings are the submission's; they differ from ``placement.policy``'s because a placement called every
    1,024 iterations must serve a whole interval, where one called every 64 serves 64."""

    key = "placement.submission"
    halflife: float
    accept: str
    min_gain: float
    horizon_calls: float
    max_moves: int
    recount_steps: int

    def __post_init__(self) -> None:
        if self.accept not in ("target", "pays"):
            raise ValueError(f"accept={self.accept!r}: expected 'target' or 'pays'")
        if self.halflife <= 0 or self.horizon_calls <= 0 or min(self.max_moves, self.recount_steps, self.min_gain) < 0:
            raise ValueError(f"halflife={self.halflife}, horizon_calls={self.horizon_calls}, "
                             f"max_moves={self.max_moves}, min_gain={self.min_gain}: expected positive values")

    def settings(self) -> dict:
        """The keyword arguments of ``moelab_policy`` (the competition API's ``configure``)."""
        return {"halflife": self.halflife, "accept": self.accept, "min_gain": self.min_gain,
                "horizon_calls": self.horizon_calls, "max_moves": self.max_moves, "recount_steps": self.recount_steps}


@dataclass(frozen=True)
class ScoreSpec(ConfigSpec):
    """Config block ``placement.score``: the modelled time ``par_weight * PAR + slots * slot_bytes /
    bandwidth`` (:mod:`moelab.placement.simulator`), zero hotness counted as 1 with ``zero_to_one``."""

    key = "placement.score"
    zero_to_one: bool
    par_weight: float
    slot_bytes: float
    bandwidth: float


@dataclass(frozen=True)
class DynamicPolicies:
    """DS-EPLB's cadence, moelab's policy and the score's constants: what every dynamic evaluation runs."""

    eplb: EplbSpec
    moelab: PolicySpec
    score: ScoreSpec

    BLOCKS = {"eplb": EplbSpec, "policy": PolicySpec, "score": ScoreSpec}  # placement.<block> -> its spec

    @classmethod
    def from_config(cls, placement: Mapping[str, Any]) -> DynamicPolicies:
        """From the ``placement`` block (its ``eplb``, ``policy`` and ``score`` keys; others are ignored)."""
        specs = [spec.from_config(placement.get(block), spec.key) for block, spec in cls.BLOCKS.items()]
        return cls(*specs)

    @classmethod
    def blocks(cls, placement: Mapping[str, Any]) -> dict[str, Any]:
        """The blocks this reads, as a rule passes them (a change to any other placement key reruns nothing)."""
        return {block: placement.get(block) for block in cls.BLOCKS}

    def sim_spec(self, name: str, devices: int, slots_per_device: int, call_interval: int | None = None,
                 transmit_scale: float = 1.0, **where: Any) -> sim.SimSpec:
        """The simulator's spec for policy ``name`` on ``devices`` x ``slots_per_device``: its own window and
        call interval (``call_interval`` overrides it, for sweeps), the score's constants; ``where``: the
        rest (delays, oracle). Default, which never calls, takes DS-EPLB's cadence. ``transmit_scale``: each
        moved slot counted that many times (a run of fewer layers than the model stands for all of them), in
        the modelled time and in what moelab's policy weighs a move at."""
        if name not in POLICY_NAMES:
            raise ValueError(f"unknown policy {name!r} (known: {', '.join(POLICY_NAMES)})")
        cadence = self.moelab if name == "moelab" else self.eplb
        return sim.SimSpec(devices, slots_per_device, window=cadence.window,
                           interval=cadence.call_interval if call_interval is None else call_interval,
                           zero_to_one=self.score.zero_to_one, par_weight=self.score.par_weight,
                           slot_bytes=self.score.slot_bytes * transmit_scale, bandwidth=self.score.bandwidth,
                           **where)

    def build(self, name: str, spec: sim.SimSpec, iterations: int, num_groups: int = 1,
              num_nodes: int = 1) -> sim.Policy | None:
        """Policy ``name`` as a simulator callable (Default: None, no policy); ``num_groups`` and
        ``num_nodes`` > 1 make DS-EPLB hierarchical."""
        if name == "Default":
            return None
        if name == "DS-EPLB":
            return policies.eplb_policy(spec, num_groups, num_nodes)
        if name == "moelab":
            return self.moelab.build(spec, iterations)
        raise ValueError(f"unknown policy {name!r} (known: {', '.join(POLICY_NAMES)})")
