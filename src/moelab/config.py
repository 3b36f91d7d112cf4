"""Config cross-checks beyond the JSON schema, and the typed views the stages take.

``check(config)`` runs before any job (common.smk) and raises ConfigError naming the key and what
was expected. Keys are addressed as dotted paths, e.g. ``synthetic.scenarios[2].alpha``.
"""

from __future__ import annotations

from typing import Any

from moelab.synthetic.drift import Drift
from moelab.synthetic.scenarios import Scenario, StreamSpec, SyntheticSpec, trace_id


class ConfigError(ValueError):
    pass


def _scenario(raw: dict[str, Any], where: str) -> Scenario:
    try:
        return Scenario.from_config(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def check(config: dict[str, Any]) -> None:
    """Raise ConfigError on the first inconsistent value."""
    rl = config["request_length"]
    if rl["min"] > rl["max"]:
        raise ConfigError(f"request_length.min={rl['min']} exceeds request_length.max={rl['max']}")
    drifts = config.get("drift", {})
    for name, d in drifts.items():
        try:
            Drift(**d)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"drift.{name}: {exc}") from None
    for i, shape in enumerate(config["synthetic"]["shapes"]):
        E, k = shape["num_experts"], shape["top_k"]
        where = f"synthetic.shapes[{i}]"
        if k > E:
            raise ConfigError(f"{where}.top_k={k} exceeds num_experts={E}")
        for ep in config["ep_sizes"]:
            if E % ep:
                raise ConfigError(f"ep_sizes: num_experts={E} ({where}) is not divisible by EP size {ep}")
    names: dict[str, int] = {}
    for i, raw in enumerate(config["synthetic"]["scenarios"]):
        where = f"synthetic.scenarios[{i}]"
        if "alpha" in raw and raw["alpha"] < 0:
            raise ConfigError(f"{where}.alpha={raw['alpha']} must be >= 0")
        sc = _scenario(raw, where)
        if sc.drift != "none" and sc.drift not in drifts:
            raise ConfigError(f"{where}.drift={sc.drift!r} is not defined under drift: (known: {sorted(drifts)})")
        if sc.loads == "reference" and sc.drift != "none":
            raise ConfigError(f"{where}: loads=reference is one deterministic batch and cannot drift")
        if sc.kind != "powerlaw" and ("alpha" in raw or "loads" in raw):
            raise ConfigError(f"{where}: alpha/loads apply to kind powerlaw only, not {sc.kind!r}")
        if sc.kind != "imbalanced" and "imbalance_factor" in raw:
            raise ConfigError(f"{where}: imbalance_factor applies to kind imbalanced only")
        for j, shape in enumerate(config["synthetic"]["shapes"]):
            E, k = shape["num_experts"], shape["top_k"]
            if sc.worst_case_ep and E % sc.worst_case_ep:
                raise ConfigError(f"{where}.worst_case_ep={sc.worst_case_ep} does not divide "
                                  f"num_experts={E} (synthetic.shapes[{j}])")
            if sc.kind == "imbalanced" and not 1 <= sc.imbalance_factor <= E / k:
                raise ConfigError(f"{where}.imbalance_factor={sc.imbalance_factor} must lie in "
                                  f"[1, num_experts/top_k={E / k:g}] for synthetic.shapes[{j}] (an expert "
                                  f"takes each token at most once)")
        if sc.name in names:
            raise ConfigError(f"{where}: scenario name {sc.name!r} repeats synthetic.scenarios[{names[sc.name]}]"
                              f" (set a distinct name:)")
        names[sc.name] = i


def synthetic_specs(config: dict[str, Any]) -> dict[str, SyntheticSpec]:
    """trace id -> spec, for every scenario x shape."""
    st = StreamSpec(config["concurrency"], config["iterations"], config["layers"],
                    config["request_length"]["min"], config["request_length"]["max"])
    drifts = {name: Drift(**d) for name, d in config.get("drift", {}).items()}
    out = {}
    for raw in config["synthetic"]["scenarios"]:
        sc = Scenario.from_config(raw)
        for shape in config["synthetic"]["shapes"]:
            spec = SyntheticSpec(sc, shape["num_experts"], shape["top_k"], st, config["reference_tokens"],
                                 config["seed"], drifts.get(sc.drift, Drift()))
            out[trace_id(sc.name, spec.num_experts, spec.top_k)] = spec
    return out
