import re
import sys
from pathlib import Path

from snakemake.utils import validate

# The workflow itself imports moelab from this checkout (scripts do the same: _moelab_path.py).
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

import moelab.config as mconfig
from moelab.capture_spec import EMBEDDED, CaptureSpec, model_dir
from moelab.deps import module_files
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

SPECS = mconfig.synthetic_specs(config)
TRACES = sorted(SPECS)
SHAPES = sorted(
    {f"E{s['num_experts']}-k{s['top_k']}" for s in config["synthetic"]["shapes"]}
)
DRIFTING = sorted(t for t, s in SPECS.items() if not s.drift.is_static)

# Captured traces: one per configured model, plus the gaussian-input proxies.
CAPTURE = CaptureSpec.from_config(config["capture"])
MODELS = {m["name"]: m for m in config["capture"]["models"]}
CAPTURED = [f"captured-{name}" for name in MODELS]
PROXIES = [f"proxy-{name}" for name in config["capture"]["proxy"]]
ALL_TRACES = TRACES + CAPTURED + PROXIES
PLACEMENT_TRACES = (
    CAPTURED + PROXIES + (TRACES if config["placement"]["include_synthetic"] else [])
)
# The serving-scale dynamic placement evaluation (hotness generated directly), one job per seed.
HOT_SEEDS = (config["placement"]["dynamic_synthetic"] or {"seeds": []})["seeds"]
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
    m["path"] for m in MODELS.values()
}


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


def library_sources(*modules):
    """Package files a rule's script imports (and what they import): rule inputs."""
    root = Path(workflow.basedir)
    files = module_files("moelab.jobs", *(f"moelab.{m}" for m in modules))
    return [str(p.relative_to(root)) for p in files] + [
        "workflow/scripts/_moelab_path.py"
    ]


def mem(base_mb):
    """Memory that grows with each retry (profiles/slurm retries failed jobs)."""

    def mem_mb(wildcards, attempt):
        return base_mb * attempt

    return mem_mb


def trace_file(wildcards):
    """Where a trace id's parquet lives (synthetic, captured or proxy)."""
    return trace_path(wildcards.trace)


def trace_path(t):
    if t in SPECS:
        return f"results/synthetic/{t}/trace.parquet"
    kind, name = t.split("-", 1)
    return f"results/{kind}/{name}/trace.parquet"


def routing_source_input(wildcards):
    """The capacity sweep reads a trace, except for the gaussian-logit source."""
    return [] if wildcards.source == "gaussian" else [trace_path(wildcards.source)]


def routing_tokenizer_input(wildcards):
    """A BPE training study reads the pipeline's tokenizer; a byte-level one reads nothing more."""
    bpe = ROUTING_STUDIES[wildcards.study]["tokenizer"] == "bpe"
    return ["results/models/tokenizer"] if bpe else []


def routing_study_params(wildcards):
    return ROUTING_STUDIES[wildcards.study]


def routing_train_gpus(wildcards):
    """A study on cuda asks for a GPU (the Slurm profile's gpu partition)."""
    return 0 if ROUTING_STUDIES[wildcards.study].get("device", "cpu") == "cpu" else 1


def routing_train_files(name, bench=False):
    """One file per (study, strategy) run of the training study."""
    if bench:
        return [f"results/bench/routing/train/{s}/{x}.parquet" for s, x in ROUTING_RUNS]
    return [f"results/routing/train/{s}/{x}/{name}.parquet" for s, x in ROUTING_RUNS]


def perft_model_path(wildcards, input):
    """The pipeline-made checkpoint is the job's input; a user's is the configured path."""
    if input.model:
        return input.model[0]
    return MODELS[ROUTING_PERFT["model"]]["path"]


def perft_model_inputs():
    """The pipeline-made checkpoint is an input of the PERFT job; a user's is not (checked in config)."""
    path = MODELS[ROUTING_PERFT["model"]]["path"]
    return [model_dir(path)] if path in EMBEDDED else []


def model_inputs(wildcards):
    """A pipeline-made checkpoint is an input of its capture; a user's is not (checked in config)."""
    path = MODELS[wildcards.model]["path"]
    return [model_dir(path)] if path in EMBEDDED else []


def capture_params(wildcards):
    return CAPTURE.model(wildcards.model)


def capture_gpus(wildcards):
    """Real checkpoints ask for a GPU so a cluster profile sends them to GPU nodes."""
    return 0 if MODELS[wildcards.model]["path"] in EMBEDDED else 1


def kernel_shapes():
    """Resolved expert shapes, CPU-scaled when the benchmark runs on a CPU (rows carry the scale)."""
    from moelab.kernels.shapes import resolve

    scale = KERNELS["cpu_scale"] if KERNELS.get("device") == "cpu" else 1
    return [
        resolve(s, config["tiny"]).scaled(scale).to_dict()
        for s in KERNELS.get("shapes", [])
    ]


def kernel_spec():
    keys = ("implementations", "dtype", "device", "devices", "ep_sizes", "placements")
    keys += ("capacity_factor", "warmup", "iters", "graphs", "profile")
    return {k: KERNELS[k] for k in keys if k in KERNELS} | {"seed": config["seed"]}


def kernel_tpus():
    """JAX benchmarks ask for the tpu resource class (the Slurm profile maps it to a partition)."""
    return 0 if KERNEL_JAX.get("platform", "cpu") == "cpu" else 1


def kernel_gpus():
    """Torch benchmarks ask for a GPU unless the config pins them to the CPU."""
    return 0 if KERNELS.get("device", "cpu") == "cpu" else 1


def get_synthetic_spec(wildcards):
    return SPECS[wildcards.trace].to_dict()


def traces_of_shape(wildcards):
    return [
        f"results/stats/{t}/experts.parquet"
        for t in TRACES
        if t.endswith(f"-{wildcards.shape}")
    ]


def device_tables_of_shape(wildcards):
    return [
        f"results/stats/{t}/devices.parquet"
        for t in TRACES
        if t.endswith(f"-{wildcards.shape}")
    ]


def powerlaw_alphas():
    return sorted(
        {
            float(s.scenario.alpha)
            for s in SPECS.values()
            if s.scenario.kind == "powerlaw"
        }
        | {0.0, 1.01, 1.2}
    )


def figure(name):
    return [f"results/figures/{name}.{ext}" for ext in ("svg", "png", "html")]


def bench_figure(name):
    return [f"results/bench/figures/{name}.{ext}" for ext in ("svg", "png", "html")]


ROUTING_FIGURES = (
    "routing_convergence",
    "routing_load_vs_ppl",
    "routing_expert_load",
    "routing_heatmap",
    "routing_token_type",
)


def final_outputs():
    out = ["results/tables/load_stats.parquet", "results/tables/load_stats.html"]
    out += ["results/tables/coactivation.parquet", "results/tables/coactivation.html"]
    out += figure("alpha_comparison")
    if CAPTURED:
        out += ["results/tables/capture_summary.html"]
        out += figure("coactivation_gain")
    for trace in CAPTURED + PROXIES:
        out += figure(f"coactivation_heatmap-{trace}")
        out += figure(f"layer_loads-{trace}")
    for trace in CAPTURED:
        out += figure(f"domain_expert-{trace}")
    if PLACEMENT_TRACES:
        out += [
            "results/tables/static_placement.html",
            "results/tables/static_matched.html",
        ]
        out += ["results/tables/cache.html"]
        out += (
            figure("static_placement")
            + figure("static_frontier")
            + figure("cache_miss")
        )
    if CAPTURED:
        out += ["results/tables/dynamic_placement.html"] + figure("dynamic_placement")
    if HOT_SEEDS:
        out += ["results/tables/dynamic_synthetic.html"] + figure("dynamic_synthetic")
    if EMBEDDED_PAIR:
        out += ["results/tables/tiny_checkpoint.html"] + figure("tiny_training")
    if KERNEL_TRACES:
        out += ["results/bench/kernels/summary.md", "results/bench/kernels/torch.csv"]
        out += [
            f"results/bench/figures/kernel_{n}.{ext}"
            for n in ("latency", "speedup", "roofline", "placement")
            for ext in ("svg", "png", "html")
        ]
    if ROUTING_SOURCES:
        out += ["results/tables/routing_capacity.html"] + figure("routing_drop_rate")
        out += bench_figure("routing_capacity_throughput")
    if ROUTING_RUNS:
        out += [
            "results/tables/routing_study.html",
            "results/tables/routing_significance.html",
        ]
        for name in ROUTING_FIGURES:
            out += figure(name)
        out += bench_figure("routing_frontier")
    if ROUTING_PERFT:
        out += ["results/tables/routing_perft.html"] + figure("routing_perft_frontier")
    out += figure("powerlaw_comparison") + figure("top20_share")
    for shape in SHAPES:
        out += figure(f"expert_loads-{shape}") + figure(f"device_loads-{shape}")
    for trace in DRIFTING:
        out += figure(f"drift_timeline-{trace}")
    return out
