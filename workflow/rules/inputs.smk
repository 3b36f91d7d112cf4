# Input functions (get_*: they take the job's wildcards), the code a rule's script imports, and the helpers
# that spell a figure's outputs. Values come from validation.smk; nothing here reads the config raw.


def script_code(script):
    """The package files workflow/scripts/<script>.py imports, and what they import: the rule's inputs, so an
    edit to one module reruns exactly the jobs whose script reaches it."""
    root = Path(workflow.basedir)
    path = root / "workflow" / "scripts" / f"{script}.py"
    files = module_files(*script_modules(path))
    return [str(p.relative_to(root)) for p in files] + [
        "workflow/scripts/_moelab_path.py"
    ]


def mem(base_mb):
    """Memory that grows with each retry (profiles/slurm retries failed jobs)."""

    def mem_mb(wildcards, attempt):
        return base_mb * attempt

    return mem_mb


def trace_path(t):
    """Where a trace id's parquet lives (synthetic, captured or proxy)."""
    if t in SPECS:
        return f"results/synthetic/{t}/trace.parquet"
    kind, name = t.split("-", 1)
    return f"results/{kind}/{name}/trace.parquet"


def get_trace(wildcards):
    return trace_path(wildcards.trace)


def get_workload_base(wildcards):
    """The fitted model a workload starts from (none for the shared one, fitted first)."""
    base = WORKLOADS.base_of(wildcards.workload)
    return f"results/placement/workloads/{base}/model.json" if base else []


def load_source_path(trace):
    """What the load statistics and the dynamic placement read: a trace, or an imported hotness."""
    if trace in IMPORTED_LOADS:
        return f"results/imported/{trace.split('-', 1)[1]}/hotness.npy"
    return trace_path(trace)


def load_meta_paths(trace):
    """An imported hotness's metadata (a trace carries its own)."""
    if trace in IMPORTED_LOADS:
        return [f"results/imported/{trace.split('-', 1)[1]}/meta.json"]
    return []


def get_load_source(wildcards):
    return load_source_path(wildcards.trace)


def get_load_meta(wildcards):
    return load_meta_paths(wildcards.trace)


def get_dynamic_block(wildcards):
    """placement.dynamic for one source: an import with an EP size is placed on that many devices."""
    return DYNAMIC_BLOCKS.get(wildcards.trace, DYNAMIC_BLOCK)


def get_import_files(wildcards):
    """Every file an import reads: a changed file reruns exactly what depends on it."""
    return IMPORTS[wildcards.name].files()


def get_import_entry(wildcards):
    return IMPORT_ENTRIES[wildcards.name]


def get_synthetic_spec(wildcards):
    return SPECS[wildcards.trace].to_dict()


def get_experts_of_shape(wildcards):
    """Every synthetic trace's per-expert loads at one (experts, top-k) shape."""
    return [
        f"results/stats/{t}/experts.parquet"
        for t in TRACES
        if t.endswith(f"-{wildcards.shape}")
    ]


def get_devices_of_shape(wildcards):
    """Every synthetic trace's per-device loads at one (experts, top-k) shape."""
    return [
        f"results/stats/{t}/devices.parquet"
        for t in TRACES
        if t.endswith(f"-{wildcards.shape}")
    ]


def powerlaw_alphas():
    """The power-law sampler figure's alphas: the configured ones and the reference's three."""
    return sorted(
        {
            float(s.scenario.alpha)
            for s in SPECS.values()
            if s.scenario.kind == "powerlaw"
        }
        | {0.0, 1.01, 1.2}
    )


def get_model_inputs(wildcards):
    """A pipeline-made checkpoint is an input of its capture; a user's is not (checked in config)."""
    m = MODELS[wildcards.model]
    return [model_dir(m.path)] if m.embedded else []


def get_capture_params(wildcards):
    return CAPTURE.model(wildcards.model)


def get_capture_gpus(wildcards):
    """A model's `gpus` (default: one for a real checkpoint, none for the embedded one), so a cluster profile
    sends it to a GPU node with that many GPUs."""
    return MODELS[wildcards.model].job_gpus


def get_capture_mem(wildcards, attempt):
    """A model's `mem_mb` (default 8000), growing with each retry like every rule's memory."""
    return mem(MODELS[wildcards.model].job_mem_mb)(wildcards, attempt)


def hub_models():
    """Names of the capture models given as hub ids (fetched by download_model)."""
    return sorted(name for name, m in MODELS.items() if m.hub)


def hub_model_pattern():
    """download_model's {model}: a hub model's name, nothing else (no name at all: matches nothing)."""
    return "|".join(re.escape(n) for n in hub_models()) or "(?!)"


def get_hub_record(wildcards):
    """A hub checkpoint's download record: the download job comes first, then the jobs that read the cache."""
    return (
        [f"results/models/hub/{wildcards.model}.json"]
        if MODELS[wildcards.model].hub
        else []
    )


def get_hub_repo(wildcards):
    """The hub id and revision the download job fetches (a change of either fetches again)."""
    m = MODELS[wildcards.model]
    return {"repo_id": m.path, "revision": m.revision}


def kernel_shapes():
    """Resolved expert shapes, CPU-scaled when the benchmark runs on a CPU (rows carry the scale)."""
    from moelab.kernels.shapes import resolve

    scale = KERNELS["cpu_scale"] if KERNELS.get("device") == "cpu" else 1
    return [resolve(s, TINY).scaled(scale).to_dict() for s in KERNELS.get("shapes", [])]


def kernel_spec():
    """The benchmark's settings (moelab.kernels.bench.BenchSpec) from the kernels block."""
    keys = ("implementations", "dtype", "device", "devices", "ep_sizes", "placements")
    keys += ("capacity_factor", "warmup", "iters", "graphs", "profile")
    return {k: KERNELS[k] for k in keys if k in KERNELS} | {"seed": SEED}


def get_routing_source_trace(wildcards):
    """The capacity sweep reads a trace, except for the gaussian-logit source."""
    return [] if wildcards.source == "gaussian" else [trace_path(wildcards.source)]


def get_routing_tokenizer(wildcards):
    """A BPE training study reads the pipeline's tokenizer; a byte-level one reads nothing more."""
    bpe = ROUTING_STUDIES[wildcards.study]["tokenizer"] == "bpe"
    return ["results/models/tokenizer"] if bpe else []


def get_study(wildcards):
    return ROUTING_STUDIES[wildcards.study]


def get_routing_train_gpus(wildcards):
    """A study on cuda asks for a GPU (the Slurm profile's gpu partition)."""
    return 0 if ROUTING_STUDIES[wildcards.study]["device"] == "cpu" else 1


def routing_train_files(name, bench=False):
    """One file per (study, strategy) run of the training study."""
    if bench:
        return [f"results/bench/routing/train/{s}/{x}.parquet" for s, x in ROUTING_RUNS]
    return [f"results/routing/train/{s}/{x}/{name}.parquet" for s, x in ROUTING_RUNS]


def perft_model_inputs():
    """The pipeline-made checkpoint is an input of the PERFT job; a user's is not (checked in config)."""
    m = MODELS[ROUTING_PERFT["model"]]
    return [model_dir(m.path)] if m.embedded else []


def perft_hub_record(wildcards):
    """A hub checkpoint's download record, when PERFT's model is one (its commit is what PERFT trains on)."""
    m = ROUTING_PERFT["model"]
    return [f"results/models/hub/{m}.json"] if MODELS[m].hub else []


def get_perft_model_path(wildcards, input):
    """The pipeline-made checkpoint is the job's input; a user's is the configured path."""
    if input.model:
        return input.model[0]
    return MODELS[ROUTING_PERFT["model"]].path


def figure(
    name,
    category,
    label,
    caption=None,
    subcategory=None,
    key=None,
    folder="results/figures",
    **labels,
):
    """One figure's three files as named outputs: the svg (shown in the report, with its caption), the png
    and the html. Named svg/png/html, or <key>_svg/<key>_png/<key>_html where a rule writes several.
    The caption is workflow/report/<name>.rst (name up to any wildcard) unless given."""
    stem = f"{folder}/{name}"
    caption = caption or name.split("-{")[0]
    names = (
        ("svg", "png", "html")
        if key is None
        else (f"{key}_svg", f"{key}_png", f"{key}_html")
    )
    shown = {"caption": f"../report/{caption}.rst", "category": category}
    if subcategory:
        shown["subcategory"] = subcategory
    shown["labels"] = {"figure": label, **labels}
    return {
        names[0]: report(f"{stem}.svg", **shown),
        names[1]: f"{stem}.png",
        names[2]: f"{stem}.html",
    }


def figure_set(names, category, subcategory=None, folder="results/figures"):
    """Several figures of one rule, each keyed by its own name (labels: the name without its stage)."""
    out = {}
    for name in names:
        label = name.removeprefix("routing_").replace("_", " ")
        out |= figure(name, category, label, None, subcategory, name, folder)
    return out


def workload_figures():
    """One figure per fitted workload, all from one job: hotness_predictions-<workload>, keyed by the workload's
    index (a workload name need not be an identifier)."""
    out = {}
    for i, w in enumerate(WORKLOAD_NAMES):
        out |= figure(
            f"hotness_predictions-{w}",
            "Placement",
            "workload model: modelled vs published",
            caption="hotness_predictions",
            key=f"w{i}",
            workload=w,
        )
    return out


def bench_figure(name, category, label, **kw):
    """A figure of timings: it lives under results/bench/ (a measurement, not a deterministic result)."""
    return figure(name, category, label, folder="results/bench/figures", **kw)


def kernel_gpus():
    """Torch benchmarks ask for a GPU unless the config pins them to the CPU."""
    return 0 if KERNELS.get("device", "cpu") == "cpu" else 1


def kernel_tpus():
    """JAX benchmarks ask for the tpu resource class (the Slurm profile maps it to a partition)."""
    return 0 if KERNEL_JAX.get("platform", "cpu") == "cpu" else 1


def summary_tables():
    """The collected tables of the stages this config runs, by name (moelab.summary_page.STAGES)."""
    tables = {
        "load_stats": "results/tables/load_stats.parquet",
        "coactivation": "results/tables/coactivation.parquet",
    }
    if PLACEMENT_TRACES:
        tables["static_matched"] = "results/tables/static_matched.parquet"
        tables["cache"] = "results/tables/cache.parquet"
    if GRID_CELLS:
        tables["dynamic_grid"] = "results/tables/dynamic_grid.parquet"
    if WORKLOAD_NAMES:
        tables["hotness_predictions"] = "results/tables/hotness_predictions.parquet"
    if ROUTING_RUNS:
        tables["routing_significance"] = "results/tables/routing_significance.parquet"
    if IMPORTED_SOURCES and GRID_EPS:
        tables["imported_grid"] = "results/tables/imported_grid.parquet"
    if DECISION and ((IMPORTED_SOURCES and GRID_EPS) or GRID_CELLS):
        tables["decision"] = "results/tables/decision.parquet"
    return tables
