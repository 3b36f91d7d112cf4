# The config, checked and resolved before any job: the schema, then every block's spec and the checks
# that tie blocks together (moelab.config), then the trace ids and job lists the rules expand over.
import re
import sys
from pathlib import Path

from snakemake.utils import validate

# The workflow itself imports moelab from this checkout (scripts do the same: _moelab_path.py).
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

import moelab.config as mconfig
from moelab.capture_spec import EMBEDDED, CaptureSpec, model_dir
from moelab.deps import module_files, script_modules
from moelab.placement.dynamic_grid import GridSpec
from moelab.placement.published import SHAPES as MODEL_SHAPES
from moelab.placement.workload_fit import WorkloadsSpec
from moelab.placement.policy_specs import DynamicPolicies
from moelab.routing.spec import train_variants

validate(config, "../schemas/config.schema.yaml")


def _sorted_keys(obj):
    """Snakemake compares params by their repr: with keys in one order, a config file whose keys are
    merely reordered reruns nothing."""
    if isinstance(obj, dict):
        return {key: _sorted_keys(obj[key]) for key in sorted(obj)}
    if isinstance(obj, list):
        return [_sorted_keys(v) for v in obj]
    return obj


_canonical = _sorted_keys(config)
config.clear()
config.update(_canonical)
try:
    mconfig.check(config)
except mconfig.ConfigError as exc:
    raise WorkflowError(f"config error: {exc}") from None

SEED = config["seed"]
TINY = config["tiny"]
SPECS = mconfig.synthetic_specs(config)
TRACES = sorted(SPECS)
SHAPES = sorted(
    {f"E{s['num_experts']}-k{s['top_k']}" for s in config["synthetic"]["shapes"]}
)
DRIFTING = sorted(t for t, s in SPECS.items() if not s.drift.is_static)

# Captured traces: one per configured model, plus the gaussian-input proxies.
CAPTURE = CaptureSpec.from_config(config["capture"])
MODELS = {m.name: m for m in CAPTURE.models}
CAPTURED = [f"captured-{name}" for name in MODELS]
PROXIES = [f"proxy-{name}" for name in config["capture"]["proxy"]]
# Users' own files (imports:): token-level dumps become traces, per-iteration counts become hotness sources.
IMPORTS = mconfig.import_specs(config)
IMPORT_ENTRIES = {
    e["name"]: e for e in config.get("imports") or []
}  # what a rule passes on
# Cheap checks of every file (headers, keys, rank files) before any job runs: in the main Snakemake process only
# (each job parses this file again, locally or on a cluster node, and must not redo them).
if workflow.is_main_process:
    try:
        for _spec in IMPORTS.values():
            _spec.check_files()
    except ValueError as exc:
        raise WorkflowError(f"import error: {exc}") from None
# placement.dynamic per source: an import that names its EP size is placed on that many devices
DYNAMIC_BLOCK = mconfig.dynamic_block(config)
DYNAMIC_BLOCKS = {
    s.source_id: mconfig.dynamic_block(config, s) for s in IMPORTS.values()
}
# Users' own dynamic policies (placement.policies): their files parsed by mconfig.check, one job each.
USER_POLICIES = {s.name: s for s in mconfig.user_policy_specs(config)}
IMPORTED_TRACES = [s.source_id for s in IMPORTS.values() if s.kind == "trace"]
IMPORTED_LOADS = [s.source_id for s in IMPORTS.values() if s.kind == "hotness"]
IMPORTED_SOURCES = IMPORTED_TRACES + IMPORTED_LOADS
ALL_TRACES = TRACES + CAPTURED + PROXIES + IMPORTED_TRACES
PLACEMENT_TRACES = (
    CAPTURED
    + PROXIES
    + IMPORTED_TRACES
    + (TRACES if config["placement"]["include_synthetic"] else [])
)
# what the load statistics and the dynamic placement read: every trace, and every imported hotness
LOAD_SOURCES = ALL_TRACES + IMPORTED_LOADS
DYNAMIC_SOURCES = CAPTURED + IMPORTED_SOURCES
# What every dynamic evaluation runs (placement.eplb, .policy and .score), as its rules pass it on.
DYNAMIC_POLICIES = DynamicPolicies.blocks(config["placement"])
# The serving-scale dynamic placement evaluation: a workload model per dataset, fitted on published cells (each
# after the workload it keeps parameters from), and one job per grid cell; what one cell runs is the grid less
# its axes (a new axis value reruns only the cells it adds).
WORKLOADS = (
    WorkloadsSpec.from_config(config["placement"]["workloads"])
    if config["placement"].get("workloads")
    else None
)
WORKLOAD_NAMES = WORKLOADS.order() if WORKLOADS else []
# what a fit job reads: the block less the predictions' seeds and layers (they rerun the predictions only)
WORKLOADS_FIT = (
    WorkloadsSpec.fit_block(config["placement"]["workloads"]) if WORKLOADS else {}
)
WORKLOAD_EXPERTS = {
    w: MODEL_SHAPES[WORKLOADS.entry(w).model]["experts"] for w in WORKLOAD_NAMES
}
GRID = (
    GridSpec.from_config(config["placement"]["grid"])
    if config["placement"].get("grid")
    else None
)
GRID_CELL = GRID.cell.to_config() if GRID else {}
GRID_CELLS = GRID.cells(WORKLOAD_EXPERTS) if GRID else []
GRID_EPS = list(GRID.eps) if GRID else []
# The decision per imported load (placement.decision): on the grid's EP sizes and seconds per call.
DECISION = config["placement"].get("decision")
# Kernel benchmarks: the traces timed, and numbers recorded on machines we cannot rerun at will.
KERNELS = config.get("kernels") or {}
KERNEL_TRACES = KERNELS.get("traces", [])
KERNEL_JAX = KERNELS.get("jax") or {}
JAX_TRACES = KERNEL_JAX.get("traces", [])
# the latency-matched alpha is for traces of real models: captured ones (and their gaussian proxies)
ALPHA_TRACES = (
    [t for t in KERNEL_TRACES if t in CAPTURED + PROXIES]
    if KERNELS.get("alpha")
    else []
)
# the load cap matters to the capped co-activation placement only: other configs ignore its changes
KERNEL_SLACK = (
    config["placement"]["load_slack"]
    if "coactivation_capped" in KERNELS.get("placements", [])
    else 0.0
)
RECORDED_KERNELS = sorted(
    str(p.relative_to(workflow.basedir))
    for p in Path(workflow.basedir).glob("recorded/*/kernels/*.parquet")
)
# Routing study: capacity-sweep sources (gaussian logits, traces) and the trained strategies.
ROUTING = config.get("routing") or {}
ROUTING_CAPACITY = ROUTING.get("capacity") or {}
ROUTING_SOURCES = (["gaussian"] if ROUTING_CAPACITY.get("gaussian") else []) + list(
    ROUTING_CAPACITY.get("traces", [])
)
ROUTING_TRAIN = ROUTING.get("train") or {}
# The training study: `base` is routing.train; each routing.train_variants entry overrides some of its keys.
ROUTING_STUDIES = (
    {"base": ROUTING_TRAIN} | train_variants(ROUTING) if ROUTING_TRAIN else {}
)
ROUTING_RUNS = [
    (s, x) for s, spec in ROUTING_STUDIES.items() for x in spec["strategies"]
]
ROUTING_STRATEGIES = sorted({x for _, x in ROUTING_RUNS})
ROUTING_PERFT = ROUTING.get("perft") or {}
EMBEDDED_PAIR = {"embedded:tiny", "embedded:tiny-untrained"} <= {
    m.path for m in MODELS.values()
}

# The routing study's per-strategy figures (base study).
ROUTING_FIGURES = (
    "routing_convergence",
    "routing_load_vs_ppl",
    "routing_expert_load",
    "routing_heatmap",
    "routing_token_type",
)


def _alternatives(names):
    return "|".join(re.escape(n) for n in names) or "$^"


wildcard_constraints:
    trace=_alternatives(ALL_TRACES),
    shape=_alternatives(SHAPES),
    model=_alternatives(MODELS),
    seed=r"\d+",
    source=_alternatives(ROUTING_SOURCES),
    strategy=_alternatives(ROUTING_STRATEGIES),
    study=_alternatives(ROUTING_STUDIES),
