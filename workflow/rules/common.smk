import sys
from pathlib import Path

from snakemake.utils import validate

# The workflow itself imports moelab from this checkout (scripts do the same: _moelab_path.py).
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

import moelab.config as mconfig
from moelab.deps import module_files

validate(config, "../schemas/config.schema.yaml")
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


wildcard_constraints:
    trace="|".join(TRACES),
    shape="|".join(SHAPES),


def library_sources(*modules):
    """Package files a rule's script imports (and what they import): rule inputs."""
    root = Path(workflow.basedir)
    files = module_files("moelab.jobs", *(f"moelab.{m}" for m in modules))
    return [str(p.relative_to(root)) for p in files] + [
        "workflow/scripts/_moelab_path.py"
    ]


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


def final_outputs():
    out = ["results/tables/load_stats.parquet", "results/tables/load_stats.html"]
    out += figure("powerlaw_comparison") + figure("top20_share")
    for shape in SHAPES:
        out += figure(f"expert_loads-{shape}") + figure(f"device_loads-{shape}")
    for trace in DRIFTING:
        out += figure(f"drift_timeline-{trace}")
    return out
