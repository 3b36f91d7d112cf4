# What `snakemake` builds by default: every table and figure the config asks for.


def figure_files(name, bench=False):
    """A figure's svg, png and html (under results/bench/figures/ for timings)."""
    folder = "results/bench/figures" if bench else "results/figures"
    return [f"{folder}/{name}.{ext}" for ext in ("svg", "png", "html")]


def final_outputs():
    """Every table and figure the config asks for (rules' other outputs follow from these)."""
    out = [
        "results/tables/summary.html"
    ]  # the headline results, each next to its baseline
    out += ["results/tables/load_stats.parquet", "results/tables/load_stats.html"]
    out += ["results/tables/coactivation.parquet", "results/tables/coactivation.html"]
    out += figure_files("alpha_comparison")
    if CAPTURED:
        out += ["results/tables/capture_summary.html"]
        out += figure_files("coactivation_gain")
    for trace in CAPTURED + PROXIES + IMPORTED_TRACES:
        out += figure_files(f"coactivation_heatmap-{trace}")
        out += figure_files(f"layer_loads-{trace}")
    for trace in CAPTURED:
        out += figure_files(f"domain_expert-{trace}")
    if PLACEMENT_TRACES:
        out += [
            "results/tables/static_placement.html",
            "results/tables/static_matched.html",
        ]
        out += ["results/tables/cache.html"]
        out += (
            figure_files("static_placement")
            + figure_files("static_frontier")
            + figure_files("cache_miss")
        )
    if DYNAMIC_SOURCES:
        out += ["results/tables/dynamic_placement.html"] + figure_files(
            "dynamic_placement"
        )
    # the placements in the files serving engines load (each export job also writes its folder)
    if PLACEMENT_TRACES or DYNAMIC_SOURCES:
        out += ["results/exports/manifest.parquet"]
    # moelab's policy as a placement-competition submission (standalone, numpy only)
    out += ["results/exports/competition/submission.py"]
    if WORKLOAD_NAMES:
        out += ["results/tables/hotness_predictions.html"]
        for w in WORKLOAD_NAMES:
            out += figure_files(f"hotness_predictions-{w}")
    if GRID_CELLS:
        out += [
            "results/tables/dynamic_grid.html",
            "results/bench/placement/dynamic_grid_measured.parquet",
        ]
        out += figure_files("dynamic_grid_scores") + figure_files(
            "dynamic_grid_frontier"
        )
    if IMPORTED_SOURCES and GRID_EPS:
        out += [
            "results/tables/imported_grid.html",
            "results/bench/placement/imported_grid_measured.parquet",
        ]
    if DECISION and ((IMPORTED_SOURCES and GRID_EPS) or GRID_CELLS):
        out += ["results/tables/decision.html"] + figure_files("decision")
    if EMBEDDED_PAIR:
        out += ["results/tables/tiny_checkpoint.html"] + figure_files("tiny_training")
    if KERNEL_TRACES:
        out += ["results/bench/kernels/summary.md", "results/bench/kernels/torch.csv"]
        out += [
            f"results/bench/figures/kernel_{n}.{ext}"
            for n in ("latency", "speedup", "roofline", "placement")
            for ext in ("svg", "png", "html")
        ]
    if ROUTING_SOURCES:
        out += ["results/tables/routing_capacity.html"] + figure_files(
            "routing_drop_rate"
        )
        out += figure_files("routing_capacity_throughput", bench=True)
    if ROUTING_RUNS:
        out += [
            "results/tables/routing_study.html",
            "results/tables/routing_significance.html",
        ]
        for name in ROUTING_FIGURES:
            out += figure_files(name)
        out += figure_files("routing_frontier", bench=True)
    if ROUTING_PERFT:
        out += ["results/tables/routing_perft.html"] + figure_files(
            "routing_perft_frontier"
        )
    out += figure_files("powerlaw_comparison") + figure_files("top20_share")
    for shape in SHAPES:
        out += figure_files(f"expert_loads-{shape}") + figure_files(
            f"device_loads-{shape}"
        )
    for trace in DRIFTING:
        out += figure_files(f"drift_timeline-{trace}")
    return out
