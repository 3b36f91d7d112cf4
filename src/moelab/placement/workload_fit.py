"""A workload model per dataset, fitted through the competition's loop on published cells, and its predictions.

Each workload is a :class:`moelab.placement.hotness_model.HotnessModel` on a model's shape (DS-R1 or Qwen3) and a
published trace length. Its parameters are fitted so that Default and DS-EPLB, run in the competition's own loop
(:mod:`moelab.placement.competition`, DS-EPLB's delay ``ceil(seconds / 0.08)`` from the organisers' measured
seconds per call), reproduce the dataset's published cells (:mod:`moelab.placement.published`). The fit reads
only the cells the published-cells file gives values for; cells kept back are predicted, never read.

The fit is hierarchical, as the published cells allow (``docs/stages/placement.md``, "Workload models"):

1. the ``shared`` dataset (ShareGPT: the one published at every EP size) is fitted first on all its cells,
   including the parameters that describe the serving system rather than the requests (``shared_params``:
   tokens per iteration, the bursts' correlation time);
2. every other dataset keeps those and fits its own (skew, bursts, request-mix phases) on its cells (EP32 only
   for WildChat, LmSys and Mix): its other EP sizes are predictions;
3. a workload on another model (Qwen3 on LmSys) starts from its dataset's fitted parameters on the other
   shape and trace length, and fits only the parameters it names on its own cells.

Each fit is Nelder-Mead on the logarithms of the fitted parameters, common random numbers (the same draws for
every parameter set: one seed, or the mean over a workload's ``fit_seeds`` where one realisation is too noisy,
as a few long phases are), residuals PAR / 1% and transmit / 3% of the published value, simulating
``fit_layers`` layers paced as the full model (:func:`moelab.placement.simulator.paced`) with transmit scaled
to the full model. The predictions table runs every cell on ``layers`` layers for each of ``seeds``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import polars as pl

from moelab.placement import competition
from moelab.placement.hotness_model import FIELDS, Draws, HotnessModel, generate
from moelab.placement.published import (SHAPES, SOURCE, TRACE_ITERATIONS, PublishedCell, cells_of,
                                        read_cells)
from moelab.spec import ConfigError, ConfigSpec

PREDICTION_KEYS = ("seeds", "layers")  # what a fit job does not read
FITTABLE = ("skew", "tokens", "drift", "burst", "burst_time", "phase", "dwell")
INTERVALS = (256, 512, 1024, 2048, 4096)  # DS-EPLB's collection intervals in the predictions table
EPS = {"DS-R1": (32, 64, 128, 256), "Qwen3": (32, 64, 128)}
PAR_TOLERANCE, TRANSMIT_TOLERANCE = 0.01, 0.03  # residual units of the fit: 1% of PAR, 3% of transmit


@dataclass(frozen=True)
class WorkloadEntry(ConfigSpec):
    """One entry of ``placement.workloads.models``: which model and dataset, what is fitted, where it starts."""

    key = "placement.workloads.models"
    model: str  # a key of SHAPES
    dataset: str  # the dataset's name in the published-cells file
    fit: tuple[str, ...]  # parameters fitted on the cells (others: start, or the base workload's)
    start: dict | None = None  # starting values (fitted or fixed, e.g. mixes); others: the base workload's
    base: str | None = None  # the workload whose fitted parameters this one starts from (else the shared one)
    fit_seeds: tuple[int, ...] | None = None  # seeds the fit averages over (None: the block's fit_seed)

    def __post_init__(self) -> None:
        if self.model not in SHAPES:
            raise ValueError(f"model={self.model!r}: expected one of {sorted(SHAPES)}")
        bad = [p for p in self.fit if p not in FITTABLE]
        if bad or not self.fit:
            raise ValueError(f"fit={list(self.fit)}: expected one or more of {list(FITTABLE)}")
        unknown = sorted(set(self.start or {}) - set(FITTABLE) - {"mixes"})
        if unknown:
            raise ValueError(f"start: unknown parameters {unknown} (known: {[*FITTABLE, 'mixes']})")
        for k, v in (self.start or {}).items():
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0 or (k in self.fit and v == 0):
                raise ValueError(f"start.{k}={v!r}: expected a number, positive for a fitted parameter")


@dataclass(frozen=True)
class WorkloadsSpec(ConfigSpec):
    """Config block ``placement.workloads``."""

    key = "placement.workloads"
    published: str  # the published-cells CSV
    shared: str  # the workload fitted first; its shared_params are kept by every other DS-R1 workload
    shared_params: tuple[str, ...]
    models: dict  # workload name -> WorkloadEntry block
    eplb_seconds: dict  # DS-EPLB's seconds per call by EP size, as the published runs measured them
    fit_seed: int
    fit_layers: int
    max_evaluations: int
    iterations: int | None = None  # None: the published trace length (a test may shorten it)
    # the predictions table's seeds, and layers simulated there (None: all; transmit scaled to all); a fit job
    # is given the block without them (FIT_ONLY), so a change to either reruns the predictions only
    seeds: tuple[int, ...] = (1,)
    layers: int | None = None

    def __post_init__(self) -> None:
        if not self.models or not all(isinstance(b, dict) for b in self.models.values()):
            raise ValueError(f"models: expected a mapping of workload name -> {{model, dataset, fit, start}}")
        if self.shared not in self.models:
            raise ValueError(f"shared={self.shared!r}: expected one of the models {sorted(self.models)}")
        for name in self.models:
            if not str(name).replace("-", "").replace("_", "").isalnum():
                raise ValueError(f"models: {name!r}: a workload name is letters, digits, '-' and '_' (it names files)")
            e = self.entry(name)
            kept = sorted(set(e.fit) & set(self.shared_params)) if name != self.shared else []
            if kept:
                raise ValueError(f"models.{name}.fit: {kept} describe the serving system and are kept from "
                                 f"{self.shared!r} (shared_params); only {self.shared!r} fits them")
            if e.base is not None and e.base not in self.models:
                raise ValueError(f"models.{name}.base={e.base!r}: expected one of {sorted(self.models)}")
        bad = [p for p in self.shared_params if p not in FITTABLE]
        if bad:
            raise ValueError(f"shared_params: {bad} are not model parameters ({list(FITTABLE)})")
        for ep in sorted({ep for eps in EPS.values() for ep in eps}):
            if not any(str(k) == str(ep) for k in self.eplb_seconds):
                raise ValueError(f"eplb_seconds: no seconds for EP{ep} (expected {{32: s, 64: s, 128: s, 256: s}})")
        if self.fit_layers < 1 or self.max_evaluations < 1 or not self.seeds:
            raise ValueError("fit_layers and max_evaluations must be positive, seeds non-empty")
        if self.layers is not None and self.layers < 1 or self.iterations is not None and self.iterations < 1:
            raise ValueError(f"layers={self.layers}, iterations={self.iterations}: expected positive or null")

    @staticmethod
    def fit_block(block: dict) -> dict:
        """The config block as a fit job reads it: without the predictions' keys."""
        return {k: v for k, v in block.items() if k not in PREDICTION_KEYS}

    def entry(self, name: str) -> WorkloadEntry:
        return WorkloadEntry.from_config(self.models[name], f"{self.key}.models.{name}")

    def base_of(self, name: str) -> str | None:
        """The workload whose fitted model this one starts from (None for the shared one)."""
        if name == self.shared:
            return None
        return self.entry(name).base or self.shared

    def order(self) -> list[str]:
        """Workloads in fitting order (each after its base)."""
        done: list[str] = []
        while len(done) < len(self.models):
            before = len(done)
            for name in self.models:
                if name not in done and (self.base_of(name) is None or self.base_of(name) in done):
                    done.append(name)
            if len(done) == before:
                raise ConfigError(f"{self.key}.models: the bases form a cycle among {sorted(set(self.models) - set(done))}")
        return done

    def check_published(self) -> dict[str, dict]:
        """Every workload's published cells (read from the file), refusing a workload with no cell to fit."""
        try:
            cells = read_cells(self.published)
        except ValueError as exc:
            raise ConfigError(f"{self.key}.published: {exc}") from None
        self.order()
        out = {}
        for name in self.models:
            e = self.entry(name)
            mine = cells_of(cells, e.model, e.dataset)
            if not any(not c.kept_back for c in mine.values()):
                raise ConfigError(f"{self.key}.models.{name}: {self.published} has no published cell to fit for "
                                  f"{e.model} on {e.dataset!r} (datasets with cells: "
                                  f"{sorted({c.dataset for c in cells if c.model == e.model and not c.kept_back})})")
            out[name] = mine
        return out

    def delay(self, ep: int) -> int:
        seconds = {int(k): float(v) for k, v in self.eplb_seconds.items()}
        return competition.delay_iterations(seconds[ep])

    def trace_iterations(self, model: str) -> int:
        return self.iterations or TRACE_ITERATIONS[SHAPES[model]["layers"]]


def cell_grid(model: str) -> list[tuple[int, int | None]]:
    """Every (EP, interval) of the predictions table for a model: Default (None) and DS-EPLB at each interval."""
    return [(ep, iv) for ep in EPS[model] for iv in (None, *INTERVALS)]


def run_cells(hot: np.ndarray, cells: list[tuple[int, int | None]], spec: WorkloadsSpec, full_layers: int) -> dict:
    """Default and DS-EPLB in the competition's loop on ``hot`` for each (EP, interval): mean PAR and transmit
    (scaled to ``full_layers``), calls. DS-EPLB's delay is the published runs' measured seconds per call."""
    served = np.where(hot == 0, 1.0, hot).astype(np.float64)
    scale = full_layers / hot.shape[1]
    out = {}
    for ep, iv in cells:
        if iv is None:
            r = competition.simulate(served, None, INTERVALS[0], devices=ep)
        else:
            d = spec.delay(ep)
            r = competition.simulate(served, lambda w, ep=ep: competition.ds_eplb(w, ep, ep), iv, devices=ep,
                                     delay=lambda call, seconds, d=d: d, full_layers=full_layers)
        out[(ep, iv)] = {"mean_par": r["mean_par"], "transmit": r["transmit"] * scale, "calls": r["calls"]}
    return out


def residuals(runs: dict, cells: dict[tuple, PublishedCell]) -> np.ndarray:
    """Fit residuals: PAR in 1% and transmit in 3% of the published value (Default's transmit is 0 by rule)."""
    out = []
    for key, c in sorted(cells.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        if c.kept_back:
            continue
        r = runs[key]
        out.append((r["mean_par"] - c.mean_par) / (PAR_TOLERANCE * c.mean_par))
        if c.interval is not None and c.transmit:
            out.append((r["transmit"] - c.transmit) / (TRANSMIT_TOLERANCE * c.transmit))
    return np.array(out)


def starting_model(spec: WorkloadsSpec, name: str, base: HotnessModel | None) -> HotnessModel:
    """The model a workload's fit starts from: its base's fitted parameters (else the defaults) on this
    workload's shape and trace length, then its own ``start`` values."""
    e = spec.entry(name)
    shape = SHAPES[e.model]
    params = dict(base.fields()) if base is not None else {}
    params.update(layers=shape["layers"], experts=shape["experts"], top_k=shape["top_k"],
                  iterations=spec.trace_iterations(e.model))
    params.setdefault("tokens", 1.0)
    params.setdefault("skew", 0.0)
    params.update({k: (int(v) if k == "mixes" else float(v)) for k, v in (e.start or {}).items()})
    zero = [p for p in e.fit if not params.get(p)]
    if zero:
        raise ConfigError(f"{spec.key}.models.{name}.start: {zero} are fitted (on a log scale) and start at 0; "
                          f"give a positive start")
    return HotnessModel(**params)


def fit(spec: WorkloadsSpec, name: str, cells: dict[tuple, PublishedCell], base: HotnessModel | None,
        progress: Callable | None = None) -> tuple[HotnessModel, dict]:
    """Fit one workload (see the module docstring). Returns the fitted model on its full shape and a record:
    the parameters fitted and kept, evaluations, the objective before and after."""
    from scipy.optimize import minimize

    e = spec.entry(name)
    start = starting_model(spec, name, base)
    fitted = e.fit
    known = [k for k, c in cells.items() if not c.kept_back]
    L = min(spec.fit_layers, start.layers)
    seeds = e.fit_seeds or (spec.fit_seed,)
    draws = [Draws(seed, start.iterations, L, start.experts, start.mixes) for seed in seeds]
    history: list[dict] = []

    def model_at(x: np.ndarray) -> HotnessModel:
        return replace(start, **{p: float(v) for p, v in zip(fitted, np.exp(x))})

    def objective(x: np.ndarray) -> float:
        m = model_at(x)
        runs = [run_cells(generate(replace(m, layers=L), d), known, spec, m.layers) for d in draws]
        mean = {k: {v: float(np.mean([r[k][v] for r in runs])) for v in ("mean_par", "transmit")} for k in known}
        r = residuals(mean, cells)
        value = float((r ** 2).sum())
        history.append({**{p: getattr(m, p) for p in fitted}, "objective": value})
        if progress:
            progress(len(history), {p: getattr(m, p) for p in fitted}, value)
        return value

    x0 = np.log([getattr(start, p) for p in fitted])
    res = minimize(objective, x0, method="Nelder-Mead",
                   options={"maxfev": spec.max_evaluations, "xatol": 1e-3, "fatol": 1e-2})
    best = min(range(len(history)), key=lambda i: history[i]["objective"])  # the best evaluated, not the simplex's
    model = replace(start, **{p: float(history[best][p]) for p in fitted})
    record = {"fitted": list(fitted), "kept_from": spec.base_of(name), "evaluations": len(history),
              "objective_start": history[0]["objective"], "objective": history[best]["objective"],
              "residuals": len(residuals({k: {"mean_par": 1.0, "transmit": 0.0} for k in known}, cells)),
              "converged": bool(res.success)}
    return model, record


def model_record(name: str, model: HotnessModel, record: dict, spec: WorkloadsSpec) -> dict:
    """What a model file holds: the model, the workload it describes and how it was fitted."""
    e = spec.entry(name)
    return {"workload": name, "model_name": e.model, "dataset": e.dataset, "model": model.fields(),
            "source": SOURCE, "published": str(spec.published), "fit_seed": spec.fit_seed,
            "fit_layers": min(spec.fit_layers, model.layers), "fit_seeds": list(e.fit_seeds or [spec.fit_seed]),
            "fit": record}


def predictions(name: str, model: HotnessModel, cells: dict[tuple, PublishedCell], spec: WorkloadsSpec,
                progress: Callable | None = None) -> pl.DataFrame:
    """Every cell of the workload's model (:func:`cell_grid`) for each seed, on ``spec.layers`` layers (transmit
    scaled to the model's), then mean and spread (standard deviation) over seeds, the published value where the
    file gives one, and the role: ``fit`` (the fit read it), ``predicted`` (published, kept back) or ``not
    given`` (never published)."""
    e = spec.entry(name)
    grid = cell_grid(e.model)
    layers = min(spec.layers or model.layers, model.layers)
    per_seed = []
    for seed in spec.seeds:
        hot = replace(model, layers=layers).generate(seed)
        runs = run_cells(hot, grid, spec, model.layers)
        del hot
        for (ep, iv), r in runs.items():
            per_seed.append({"ep": ep, "interval": iv, "seed": seed, **r})
        if progress:
            progress(seed)
    t = (pl.DataFrame(per_seed, schema_overrides={"interval": pl.Int64})
         .group_by("ep", "interval", maintain_order=True)
         .agg(modelled_par=pl.col("mean_par").mean(), modelled_par_std=pl.col("mean_par").std(),
              modelled_transmit=pl.col("transmit").mean(), modelled_transmit_std=pl.col("transmit").std(),
              calls=pl.col("calls").mean()))
    rows = []
    for r in t.iter_rows(named=True):
        c = cells.get((r["ep"], r["interval"]))
        role = "not given" if c is None else "predicted" if c.kept_back else "fit"
        par = None if c is None or c.kept_back else c.mean_par
        tr = None if c is None or c.kept_back else c.transmit
        rows.append({"workload": name, "model": e.model, "dataset": e.dataset, "ep": r["ep"],
                     "policy": "Default" if r["interval"] is None else f"DS-EPLB@{r['interval']}",
                     "interval": r["interval"], "role": role,
                     "modelled_par": r["modelled_par"], "modelled_par_std": r["modelled_par_std"],
                     "published_par": par,
                     "par_error": None if par is None else r["modelled_par"] / par - 1.0,
                     "modelled_transmit": r["modelled_transmit"], "modelled_transmit_std": r["modelled_transmit_std"],
                     "published_transmit": tr,
                     "transmit_error": None if not tr else r["modelled_transmit"] / tr - 1.0,
                     "calls": r["calls"], "seeds": len(spec.seeds), "layers_run": layers,
                     "layers": model.layers, "iterations": model.iterations})
    return pl.DataFrame(rows, schema_overrides={"interval": pl.Int64, "published_par": pl.Float64,
                                                "par_error": pl.Float64, "published_transmit": pl.Float64,
                                                "transmit_error": pl.Float64})


def read_model(path: str | Path) -> HotnessModel:
    """A fitted workload model from its model file (:func:`model_record`)."""
    import json

    record = json.loads(Path(path).read_text())
    return HotnessModel(**{k: record["model"][k] for k in FIELDS})


def error_summary(table: pl.DataFrame) -> pl.DataFrame:
    """Per workload and role, the largest and median absolute relative error of PAR and transmit (the docs'
    error table)."""
    known = table.filter(pl.col("par_error").is_not_null())
    return (known.group_by("workload", "role", maintain_order=True)
            .agg(cells=pl.len(), par_median=pl.col("par_error").abs().median(),
                 par_max=pl.col("par_error").abs().max(),
                 transmit_max=pl.col("transmit_error").abs().max()))


def source_text(table: pl.DataFrame, model_files: list[str]) -> str:
    """Where the predictions table's numbers come from, for captions: the models (fitted parameters), how many
    layers and seeds ran, and the published source."""
    import json

    parts = []
    for f in model_files:
        r = json.loads(Path(f).read_text())
        m = r["model"]
        fitted = ", ".join(f"{p} {m[p]:.4g}" for p in r["fit"]["fitted"])
        parts.append(f"{r['workload']} ({r['model_name']} on {r['dataset']}, {m['iterations']} iterations; fitted "
                     f"{fitted} on {r['fit']['residuals']} residuals" +
                     (f", kept {r['fit']['kept_from']}'s other parameters" if r["fit"]["kept_from"] else "") + ")")
    runs = table.select("layers_run", "layers", "seeds").unique().sort("layers")
    ran = "; ".join(f"{a} of {b} layers simulated (transmit scaled to {b}), {s} seeds"
                    for a, b, s in runs.iter_rows())
    return (f"modelled: Default and DS-EPLB (global, one redundant slot per device) in the competition's loop on "
            f"synthetic hotness from the fitted workload models: {'; '.join(parts)}; {ran}; DS-EPLB delayed by the "
            f"published runs' seconds per call; published: {SOURCE}; role fit = the fit read it, predicted = "
            f"published but kept back (never read), not given = never published; CPU")
