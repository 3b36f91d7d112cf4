"""Config cross-checks beyond the JSON schema, and the typed views the stages take.

``check(config)`` runs before any job (workflow/rules/validation.smk) and raises ConfigError naming the key
and what was expected. Keys are addressed as dotted paths, e.g. ``synthetic.scenarios[2].alpha``.
"""

from __future__ import annotations

from typing import Any

from moelab.capture_spec import EMBEDDED
from moelab.spec import ConfigError
from moelab.synthetic.drift import Drift
from moelab.synthetic.scenarios import Scenario, StreamSpec, SyntheticSpec, trace_id


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
    check_placement(config)
    import_specs(config)
    check_kernels(config)
    check_routing(config)


def import_specs(config: dict[str, Any]) -> dict[str, Any]:
    """The ``imports:`` list as specs by name (config only: the files are checked by ``check_files``)."""
    from moelab.imports import ImportSpec
    from moelab.placement.dynamic_eval import DynamicSpec

    specs: dict[str, Any] = {}
    for i, entry in enumerate(config.get("imports") or []):
        spec = ImportSpec.from_config(entry, f"imports[{i}]")
        if spec.name in specs:
            raise ConfigError(f"imports[{i}].name={spec.name!r} repeats an earlier entry")
        if spec.ep_size and config.get("placement", {}).get("dynamic"):
            try:  # the dynamic placement of this import runs on its own EP size: placement.dynamic must allow it
                DynamicSpec.from_config(dynamic_block(config, spec))
            except ConfigError as exc:
                raise ConfigError(f"imports[{i}].ep_size={spec.ep_size}: {exc}") from None
        specs[spec.name] = spec
    return specs


def dynamic_block(config: dict[str, Any], spec: Any = None) -> dict[str, Any]:
    """placement.dynamic for one source: an import that names its EP size (its rank files) is placed on that
    many devices, so its exports fit the engine it came from; every other source on placement.dynamic.devices."""
    block = dict(config["placement"]["dynamic"])
    if spec is not None and getattr(spec, "ep_size", None):
        block["devices"] = spec.ep_size
    return block


def trace_ids(config: dict[str, Any]) -> dict[str, tuple[int, int] | None]:
    """Every trace id the config makes, with (experts, top_k) where known before capture."""
    ids: dict[str, tuple[int, int] | None] = {t: (s.num_experts, s.top_k) for t, s in synthetic_specs(config).items()}
    tiny = config["tiny"]
    for m in config["capture"]["models"]:
        known = (tiny["num_experts"], tiny["top_k"]) if m["path"] in EMBEDDED else None
        ids[f"captured-{m['name']}"] = known
        if m["name"] in config["capture"]["proxy"]:
            ids[f"proxy-{m['name']}"] = known
    for spec in import_specs(config).values():  # a user's token-level dump becomes a trace
        if spec.kind == "trace":
            ids[spec.source_id] = (spec.experts, spec.top_k) if spec.experts and spec.top_k else None
    return ids


def check_kernels(config: dict[str, Any]) -> None:
    """kernels: the block's spec, then what ties it to other blocks: shapes resolve (``tiny`` reads the
    tiny block), every timed trace exists and has a shape of its experts and top-k, EP sizes divide them."""
    k = config.get("kernels")
    if not k:
        return
    from moelab.kernels.shapes import ShapeError, resolve
    from moelab.kernels.spec import KernelsSpec

    spec = KernelsSpec.from_config(k)
    try:
        shapes = [resolve(s, config["tiny"]) for s in spec.shapes]
    except ShapeError as exc:
        raise ConfigError(str(exc)) from None
    known = trace_ids(config)
    for t in spec.traces:
        if t not in known:
            raise ConfigError(f"kernels.traces: {t!r} is not a trace this config makes (known: {sorted(known)})")
        ek = known[t]
        if ek is None:
            continue  # a user checkpoint: its experts are known after capture; the benchmark checks then
        if not any((s.experts, s.top_k) == ek for s in shapes):
            raise ConfigError(f"kernels.traces: {t!r} has {ek[0]} experts, top-{ek[1]}, and no entry of "
                              f"kernels.shapes {[s.name for s in shapes]} has that routing")
        for ep in spec.ep_sizes:
            if ek[0] % ep:
                raise ConfigError(f"kernels.ep_sizes: {ep} does not divide the {ek[0]} experts of trace {t!r}")


def check_routing(config: dict[str, Any]) -> None:
    """routing: each block's spec (its own checks), then what ties it to other blocks: swept traces exist,
    batches hold at least one iteration, PERFT names a captured model and a corpus domain."""
    from moelab.routing.spec import CapacitySpec, PerftSpec, StudySpec, train_variants

    r = config.get("routing") or {}
    if r.get("capacity"):
        c = CapacitySpec.from_config(r["capacity"])
        known = trace_ids(config)
        for i, t in enumerate(c.traces):
            if t not in known:
                raise ConfigError(f"routing.capacity.traces[{i}]: {t!r} is not a trace this config makes "
                                  f"(known: {sorted(known)})")
        if c.batch_tokens < config["concurrency"]:
            raise ConfigError(f"routing.capacity.batch_tokens={c.batch_tokens} is below concurrency="
                              f"{config['concurrency']}: a trace batch holds whole iterations")
    if r.get("perft"):
        pf = PerftSpec.from_config(r["perft"])
        names = [m["name"] for m in config["capture"]["models"]]
        if pf.model not in names:
            raise ConfigError(f"routing.perft.model={pf.model!r} is not a capture.models name (known: {names})")
        domains = config["corpus"]["domains"]
        if pf.domain != "auto" and config["corpus"].get("path") is None and pf.domain not in domains:
            raise ConfigError(f"routing.perft.domain={pf.domain!r} is not one of corpus.domains {domains}")
    if r.get("train"):
        StudySpec.from_config(r["train"])
        for name, spec in train_variants(r).items():
            StudySpec.from_config(spec, f"routing.train_variants ({name})")
    elif r.get("train_variants"):
        raise ConfigError("routing.train_variants needs routing.train (the base study they override)")


def check_placement(config: dict[str, Any]) -> None:
    """placement.eplb, .policy and .score (what every dynamic evaluation runs), placement.dynamic, .workloads
    (its published-cells file read and every workload given cells to fit) and .grid: their specs; the grid runs
    on fitted workloads, each on EP sizes that split its experts."""
    from moelab.placement.dynamic_eval import DynamicSpec
    from moelab.placement.dynamic_grid import GridSpec
    from moelab.placement.policy_specs import DynamicPolicies, SubmissionSpec
    from moelab.placement.published import SHAPES
    from moelab.placement.workload_fit import WorkloadsSpec

    p = config["placement"]
    DynamicPolicies.from_config(p)
    if p.get("decision"):
        from moelab.placement.decision import DecisionSpec

        DecisionSpec.from_config(p["decision"])
        if config.get("imports") and not p.get("grid"):
            raise ConfigError("placement.decision: takes its EP sizes and seconds per call from placement.grid, "
                              "which is null")
    users = user_policy_specs(config)
    for spec in users:
        spec.check_file()
    if users and not p.get("grid") and not config.get("imports"):
        raise ConfigError("placement.policies: a user's policy runs on placement.grid's cells and on imported loads "
                          "(imports:); this config has neither")
    SubmissionSpec.from_config(p["submission"])
    DynamicSpec.from_config(p["dynamic"])
    workloads = WorkloadsSpec.from_config(p["workloads"]) if p.get("workloads") else None
    if workloads:
        workloads.check_published()
    if p.get("grid"):
        grid = GridSpec.from_config(p["grid"])
        if workloads is None:
            raise ConfigError("placement.grid runs on the fitted workload models: placement.workloads is null")
        unknown = [w for w in grid.workloads if w not in workloads.models]
        if unknown:
            raise ConfigError(f"placement.grid.workloads: {unknown} are not in placement.workloads.models "
                              f"({sorted(workloads.models)})")
        for w in grid.workloads:
            experts = SHAPES[workloads.entry(w).model]["experts"]
            if not any(experts % ep == 0 for ep in grid.eps):
                raise ConfigError(f"placement.grid.eps: none of {list(grid.eps)} splits {w}'s {experts} experts")
        if grid.tuning["ep"] and SHAPES[workloads.entry(grid.tuning["workload"]).model]["experts"] % grid.tuning["ep"]:
            raise ConfigError(f"placement.grid.tuning: EP{grid.tuning['ep']} does not split "
                              f"{grid.tuning['workload']}'s experts")


def user_policy_specs(config: dict[str, Any]) -> list:
    """``placement.policies``: users' own policies, checked (their files parsed, never run)."""
    from moelab.placement.dynamic_grid import EPLB_VARIANTS
    from moelab.placement.policy_specs import POLICY_NAMES
    from moelab.placement.user_policies import policy_specs

    return policy_specs(config["placement"].get("policies") or [], (*POLICY_NAMES, *EPLB_VARIANTS))


def check_capture(config: dict[str, Any]) -> None:
    """tiny, capture and corpus: their specs; co-activation groups split the embedded checkpoint's experts."""
    from moelab.capture_spec import CaptureSpec
    from moelab.tiny import TinySpec

    spec = TinySpec.from_config(config["tiny"])
    groups = config["coactivation"]["groups"]
    if spec.num_experts % groups or spec.num_experts // groups < 2:
        raise ConfigError(f"coactivation.groups={groups} must divide tiny.num_experts={spec.num_experts} "
                          f"into groups of at least 2")
    CaptureSpec.from_config(config["capture"])
    from moelab.corpus import CorpusSpec

    CorpusSpec.from_config(config["corpus"])


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
