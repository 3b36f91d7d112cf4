"""Config cross-checks beyond the JSON schema, and the typed views the stages take.

``check(config)`` runs before any job (common.smk) and raises ConfigError naming the key and what
was expected. Keys are addressed as dotted paths, e.g. ``synthetic.scenarios[2].alpha``.
"""

from __future__ import annotations

import os
from pathlib import Path
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
    check_capture(config)
    if any(m["path"] in EMBEDDED for m in config["capture"]["models"]):
        E = config["tiny"]["num_experts"]
        for D in config["placement"]["sweep_devices"]:
            if E % D:
                raise ConfigError(f"placement.sweep_devices: {D} does not divide tiny.num_experts={E} (the "
                                  f"embedded checkpoint's traces are swept)")
    check_kernels(config)
    check_routing(config)


def trace_ids(config: dict[str, Any]) -> dict[str, tuple[int, int] | None]:
    """Every trace id the config makes, with (experts, top_k) where known before capture."""
    ids: dict[str, tuple[int, int] | None] = {t: (s.num_experts, s.top_k) for t, s in synthetic_specs(config).items()}
    tiny = config["tiny"]
    for m in config["capture"]["models"]:
        known = (tiny["num_experts"], tiny["top_k"]) if m["path"] in EMBEDDED else None
        ids[f"captured-{m['name']}"] = known
        if m["name"] in config["capture"]["proxy"]:
            ids[f"proxy-{m['name']}"] = known
    return ids


def check_kernels(config: dict[str, Any]) -> None:
    """kernels: traces exist, shapes resolve, every timed trace has a shape of its experts and top-k, EP
    sizes divide the devices and the experts."""
    k = config.get("kernels")
    if not k:
        return
    from moelab.kernels.shapes import ShapeError, resolve

    try:
        shapes = [resolve(s, config["tiny"]) for s in k["shapes"]]
    except ShapeError as exc:
        raise ConfigError(str(exc)) from None
    known = trace_ids(config)
    for ep in k["ep_sizes"]:
        if k["devices"] % ep:
            raise ConfigError(f"kernels.ep_sizes: {ep} does not divide kernels.devices={k['devices']}")
    for t in k["traces"]:
        if t not in known:
            raise ConfigError(f"kernels.traces: {t!r} is not a trace this config makes (known: {sorted(known)})")
        ek = known[t]
        if ek is None:
            continue  # a user checkpoint: its experts are known after capture; the benchmark checks then
        if not any((s.experts, s.top_k) == ek for s in shapes):
            raise ConfigError(f"kernels.traces: {t!r} has {ek[0]} experts, top-{ek[1]}, and no entry of "
                              f"kernels.shapes {[s.name for s in shapes]} has that routing")
        for ep in k["ep_sizes"]:
            if ek[0] % ep:
                raise ConfigError(f"kernels.ep_sizes: {ep} does not divide the {ek[0]} experts of trace {t!r}")
    j = k.get("jax")
    if j:
        for key in ("traces", "tokens"):
            extra = sorted(set(j[key]) - set(k[key]))
            if extra:
                raise ConfigError(f"kernels.jax.{key}: {extra} not in kernels.{key} (workloads are cut once)")
    a = k.get("alpha")
    if a and list(a["alphas"]) != sorted(a["alphas"]):
        raise ConfigError(f"kernels.alpha.alphas={a['alphas']} must be ascending")


def check_routing(config: dict[str, Any]) -> None:
    """routing: swept traces exist, batches hold at least one iteration, the gaussian grid has a valid
    (E, k), the training study's spec is consistent."""
    r = config.get("routing") or {}
    c = r.get("capacity")
    if c:
        known = trace_ids(config)
        for i, t in enumerate(c["traces"]):
            if t not in known:
                raise ConfigError(f"routing.capacity.traces[{i}]: {t!r} is not a trace this config makes "
                                  f"(known: {sorted(known)})")
        if c["batch_tokens"] < config["concurrency"]:
            raise ConfigError(f"routing.capacity.batch_tokens={c['batch_tokens']} is below concurrency="
                              f"{config['concurrency']}: a trace batch holds whole iterations")
        g = c.get("gaussian")
        if g and not any(k <= E for k in g["top_k"] for E in g["experts"]):
            raise ConfigError(f"routing.capacity.gaussian: no top_k {g['top_k']} fits any experts {g['experts']}")
    pf = r.get("perft")
    if pf:
        names = [m["name"] for m in config["capture"]["models"]]
        if pf["model"] not in names:
            raise ConfigError(f"routing.perft.model={pf['model']!r} is not a capture.models name (known: {names})")
        domains = config["corpus"]["domains"]
        if pf["domain"] != "auto" and config["corpus"].get("path") is None and pf["domain"] not in domains:
            raise ConfigError(f"routing.perft.domain={pf['domain']!r} is not one of corpus.domains {domains}")
        seen = set()
        for i, v in enumerate(pf["variants"]):
            key = tuple(sorted(v.items()))
            if key in seen:
                raise ConfigError(f"routing.perft.variants[{i}] repeats an earlier variant")
            seen.add(key)
            if v["kind"] in ("S", "E") and ("adapters" in v or "top_k" in v):
                raise ConfigError(f"routing.perft.variants[{i}]: PERFT-{v['kind']} takes no adapters/top_k "
                                  f"(S has one adapter; E one per base expert, weighted by the base router)")
            if v["kind"] == "D" and "top_k" in v:
                raise ConfigError(f"routing.perft.variants[{i}]: PERFT-D has every adapter active (no top_k)")
            if v.get("top_k", 1) > v.get("adapters", 1):
                raise ConfigError(f"routing.perft.variants[{i}].top_k={v['top_k']} exceeds adapters="
                                  f"{v.get('adapters', 1)}")
    t = r.get("train")
    if t:
        from moelab.routing.study import StudySpec

        try:
            StudySpec.from_config(t)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"routing.train: {exc}") from None
        for name, spec in train_variants(r).items():
            try:
                StudySpec.from_config(spec)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"routing.train_variants ({name}): {exc}") from None
    elif r.get("train_variants"):
        raise ConfigError("routing.train_variants needs routing.train (the base study they override)")


def train_variants(routing: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """name -> routing.train with the variant's keys overriding it (routing.train_variants)."""
    out: dict[str, dict[str, Any]] = {}
    for i, v in enumerate(routing.get("train_variants") or []):
        name = v.get("name")
        if not name or name == "base" or name in out or not str(name).replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"routing.train_variants[{i}].name={name!r}: give each variant a distinct name of "
                              f"letters, digits, - and _ (not 'base')")
        out[name] = {**routing["train"], **{k: val for k, val in v.items() if k != "name"}}
    return out


EMBEDDED = {"embedded:tiny": "results/models/tiny", "embedded:tiny-untrained": "results/models/tiny-untrained"}


def model_dir(path: str) -> str:
    """Where a configured model lives: the embedded checkpoints map to the pipeline's outputs."""
    return EMBEDDED.get(path, path)


def _hub_cache() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    return Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"


def _check_model(path: str, where: str) -> None:
    """A configured checkpoint must exist before anything runs: a local folder with config.json,
    or a hub id already in the local cache (runs are offline)."""
    if path in EMBEDDED:
        return
    if path.startswith("embedded:"):
        raise ConfigError(f"{where}.path={path!r}: unknown embedded checkpoint (known: {sorted(EMBEDDED)})")
    local = Path(path)
    if local.exists() or path.startswith((".", "/", "~")) or path.count("/") != 1:
        if not (local.expanduser() / "config.json").exists():
            raise ConfigError(f"{where}.path={path!r}: expected a folder with config.json (a "
                              f"save_pretrained checkpoint); none found")
        return
    cached = _hub_cache() / f"models--{path.replace('/', '--')}"
    if not cached.exists():
        raise ConfigError(f"{where}.path={path!r}: not a local folder and not in the Hugging Face cache "
                          f"{_hub_cache()} (runs are offline). Download it where there is network "
                          f"(`hf download {path}`) and copy the cache here, or give a local folder")


def check_capture(config: dict[str, Any]) -> None:
    from moelab.tiny import TinySpec

    try:
        spec = TinySpec(**config["tiny"])
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"tiny: {exc}") from None
    groups = config["coactivation"]["groups"]
    if spec.num_experts % groups or spec.num_experts // groups < 2:
        raise ConfigError(f"coactivation.groups={groups} must divide tiny.num_experts={spec.num_experts} "
                          f"into groups of at least 2")
    names: dict[str, int] = {}
    for i, m in enumerate(config["capture"]["models"]):
        where = f"capture.models[{i}]"
        if "phase_requests" in m and m.get("arrival") != "domain_phases":
            raise ConfigError(f"{where}.phase_requests applies to arrival: domain_phases only")
        if m["name"] in names:
            raise ConfigError(f"{where}.name={m['name']!r} repeats capture.models[{names[m['name']]}]")
        names[m["name"]] = i
        _check_model(m["path"], where)
    for j, name in enumerate(config["capture"]["proxy"]):
        if name not in names:
            raise ConfigError(f"capture.proxy[{j}]={name!r} is not a capture.models name (known: {sorted(names)})")
    if config["corpus"].get("path") is None:
        from moelab.corpus import BUILTIN

        unknown = sorted(set(config["corpus"]["domains"]) - set(BUILTIN))
        if unknown:
            raise ConfigError(f"corpus.domains {unknown} are not built-in domains {sorted(BUILTIN)} "
                              f"(or set corpus.path to your own corpus)")
    elif not Path(config["corpus"]["path"]).exists():
        raise ConfigError(f"corpus.path={config['corpus']['path']!r} does not exist")
    if 0 < len(config["corpus"]["domains"]) < 2:
        raise ConfigError("corpus.domains: list at least two domains (expert/domain information needs them)")


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
