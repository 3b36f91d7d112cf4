"""Calibrating the hotness model (:mod:`moelab.placement.hotness_model`) on published figures.

moelab's own Default and DS-EPLB (global, one redundant slot per device) run on the model's hotness must
reproduce the published DS-R1 ShareGPT table (:mod:`moelab.placement.published`). The recipe
(``docs/stages/placement.md``):

1. **Trace length from a fit cell.** DS-EPLB@1024 moved 82,350 slots at EP32; one full redeployment is
   ``layers x (experts + devices)`` slots, so at least ``ceil(transmit / full)`` calls were made. Calls
   fall at ``interval``, then ``interval + delay + layers`` iterations after each other (a redeployment
   takes one layer per iteration), so the trace length lies between the last of those calls and the
   next; the model takes the midpoint.
2. **Skew, tokens and drift fitted on the three fit cells** (Default PAR, DS-EPLB@1024 PAR and
   transmit at EP32), by Nelder-Mead on their logarithms with common random numbers, simulating
   ``fit_layers`` layers (transmit scaled to the model's layers).
3. **Every cell evaluated once on all layers** (or ``layers`` of them for a quick run, transmit scaled):
   the fit cells (how well it fits), the predicted cells (held out: never seen by the fit) and the same
   model on another shape (an extrapolation: nothing published to compare with).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import polars as pl

from moelab.placement import policies
from moelab.placement import simulator as sim
from moelab.placement.hotness_model import Draws, HotnessModel, generate
from moelab.placement.published import DS_R1, DS_R1_SHAREGPT, SOURCE, Cell
from moelab.spec import ConfigSpec


@dataclass(frozen=True)
class CalibrationSpec(ConfigSpec):
    """Config block ``placement.calibration``."""

    key = "placement.calibration"
    seed: int
    fit_layers: int  # layers simulated while fitting
    layers: int | None  # layers simulated for the reported table (None: all 58); transmit scaled to 58
    start: tuple[float, float, float]  # initial skew, tokens per iteration, drift per iteration
    max_evaluations: int
    eplb_seconds: float  # modelled DS-EPLB time per call, charged as a redeployment delay
    iteration_seconds: float
    extrapolate: tuple[dict, ...]  # other shapes by the same recipe: {name, layers, experts, top_k}

    def __post_init__(self) -> None:
        for name in ("fit_layers", "layers"):
            v = getattr(self, name)
            if v is not None and not 1 <= v <= DS_R1["layers"]:
                raise ValueError(f"{name}={v}: expected 1..{DS_R1['layers']}")
        if len(self.start) != 3 or min(self.start) < 0 or self.start[1] <= 0:
            raise ValueError(f"start={list(self.start)}: expected [skew >= 0, tokens > 0, drift >= 0]")
        for shape in self.extrapolate:
            if set(shape) != {"name", "layers", "experts", "top_k"}:
                raise ValueError(f"extrapolate entry {shape}: expected keys name, layers, experts, top_k")

    def delay(self) -> int:
        return sim.delay_iterations(self.eplb_seconds, self.iteration_seconds)

    def sim_spec(self, experts: int, devices: int, interval: int | None) -> sim.SimSpec:
        """Default (``interval`` None) or DS-EPLB every ``interval`` iterations on the window since its last
        call, one redundant slot per device, first called once ``interval`` iterations have passed."""
        iv = interval or 1 << 30
        return sim.SimSpec(devices, experts // devices + 1, window=iv, interval=iv,
                           policy_seconds=self.eplb_seconds, iteration_seconds=self.iteration_seconds)


def trace_length(cell: Cell, layers: int, experts: int, delay: int) -> tuple[int, int, int]:
    """(calls, shortest, longest trace) consistent with a DS-EPLB transmit cell; see the module docstring."""
    full = layers * (experts + cell.ep)
    calls = math.ceil(cell.published / full)
    step = cell.interval + delay + layers
    last = cell.interval + (calls - 1) * step
    return calls, last + 1, last + step


def run_cell(hot: np.ndarray, cell: Cell, spec: CalibrationSpec) -> dict:
    """moelab's Default or DS-EPLB on ``hot`` for one cell's devices and cadence."""
    s = spec.sim_spec(hot.shape[2], cell.ep, cell.interval)
    return sim.simulate(hot, None if cell.policy == "Default" else policies.eplb_policy(s), s)


def fit(spec: CalibrationSpec, progress=None) -> tuple[HotnessModel, dict]:  # noqa: ANN001
    """Fit skew, tokens and drift on the fit cells. Returns (the model on the full DS-R1 shape, a record
    of the fit: trace-length derivation, evaluations, residuals)."""
    from scipy.optimize import minimize

    L, E, k = DS_R1["layers"], DS_R1["experts"], DS_R1["top_k"]
    fit_cells = [c for c in DS_R1_SHAREGPT if c.role == "fit"]
    transmit_cell = next(c for c in fit_cells if c.metric == "transmit")
    calls, lo, hi = trace_length(transmit_cell, L, E, spec.delay())
    iterations = (lo + hi) // 2
    draws = Draws(spec.seed, iterations, spec.fit_layers, E)
    scale = L / spec.fit_layers  # transmit of the fitted layers -> the model's
    evals: list[tuple] = []

    def residuals(x: np.ndarray) -> np.ndarray:
        skew, tokens, drift = np.exp(x)
        hot = generate(HotnessModel(spec.fit_layers, E, k, iterations, skew, tokens, drift), draws)
        runs = {}
        out = []
        for c in fit_cells:
            key = (c.policy, c.ep, c.interval)
            if key not in runs:
                runs[key] = run_cell(hot, c, spec)
            r = runs[key]
            if c.metric == "transmit":
                out.append((r["transmit"] * scale - c.published) / (0.02 * c.published))
            else:
                out.append((r["mean_par"] - c.published) / 0.005)
        evals.append((float(skew), float(tokens), float(drift), *out))
        if progress:
            progress(len(evals), skew, tokens, drift, out)
        return np.array(out)

    x0 = np.log(np.maximum(np.array(spec.start, float), 1e-9))
    res = minimize(lambda x: float((residuals(x) ** 2).sum()), x0, method="Nelder-Mead",
                   options={"maxfev": spec.max_evaluations, "xatol": 1e-3, "fatol": 1e-3})
    skew, tokens, drift = (float(v) for v in np.exp(res.x))
    model = HotnessModel(L, E, k, iterations, skew, tokens, drift)
    record = {"calls": calls, "shortest": lo, "longest": hi, "evaluations": len(evals), "objective": float(res.fun),
              "history": evals}
    return model, record


def cells_table(model: HotnessModel, spec: CalibrationSpec) -> pl.DataFrame:
    """Published vs modelled for every cell, each run once on the model's layers (``spec.layers`` of them
    if set, transmit scaled to the model's); then the same model on each extrapolated shape (the fit cells'
    policies and cadence at EP32, nothing published)."""
    rows = []
    layers = spec.layers or model.layers
    hot = replace(model, layers=layers).generate(spec.seed)
    runs: dict = {}
    for c in DS_R1_SHAREGPT:
        key = (c.policy, c.ep, c.interval)
        if key not in runs:
            runs[key] = run_cell(hot, c, spec)
        rows.append(_row(c, "DS-R1", runs[key], c.published, model.layers / layers))
    del hot
    for shape in spec.extrapolate:
        other = replace(model, layers=shape["layers"], experts=shape["experts"], top_k=shape["top_k"])
        hot = other.generate(spec.seed)
        done: dict = {}
        for c in DS_R1_SHAREGPT:
            if c.role != "fit":
                continue
            c2 = replace(c, role="extrapolation")
            key = (c.policy, c.ep, c.interval)
            if key not in done:
                done[key] = run_cell(hot, c2, spec)
            rows.append(_row(c2, shape["name"], done[key], None, 1.0))
    return pl.DataFrame(rows, schema_overrides={"published": pl.Float64, "error": pl.Float64,
                                                "relative_error": pl.Float64, "interval": pl.Int64})


def _row(c: Cell, model_name: str, r: dict, published: float | None, transmit_scale: float) -> dict:
    value = float(r[c.metric]) * (transmit_scale if c.metric == "transmit" else 1.0)
    return {"cell": c.name, "model": model_name, "role": c.role, "policy": c.policy, "ep": c.ep,
            "interval": c.interval, "metric": c.metric, "published": published, "modelled": value,
            "error": None if published is None else value - published,
            "relative_error": None if published is None else (value - published) / published,
            # Default is never called: its whole trace counts
            "mean_par_after_first_call": float(r["mean_par" if c.policy == "Default" else "mean_par_after_first_call"]),
            "calls": int(r["calls"])}


def params_record(model: HotnessModel, record: dict, spec: CalibrationSpec) -> dict:
    """What the grid needs (the fitted model) and what the report states (how it was fitted)."""
    return {"model": {k: getattr(model, k) for k in ("layers", "experts", "top_k", "iterations", "skew",
                                                     "tokens", "drift")},
            "source": SOURCE, "seed": spec.seed, "fit_layers": spec.fit_layers,
            "table_layers": spec.layers or model.layers,
            "trace_length": {"calls": record["calls"], "shortest": record["shortest"], "longest": record["longest"]},
            "evaluations": record["evaluations"], "objective": record["objective"]}
