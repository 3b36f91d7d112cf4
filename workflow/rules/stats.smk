rule compute_load_stats:
    input:
        source=get_load_source,
        meta=get_load_meta,
        code=script_code("compute_load_stats"),
    output:
        layers="results/stats/{trace}/layers.parquet",
        experts="results/stats/{trace}/experts.parquet",
        devices="results/stats/{trace}/devices.parquet",
        timeline="results/stats/{trace}/timeline.parquet",
    log:
        "logs/stats/{trace}.log",
    benchmark:
        "results/bench/stats/{trace}.tsv"
    wildcard_constraints:
        trace=_alternatives(LOAD_SOURCES),
    conda:
        "../../envs/core.yaml"
    threads: config["threads"]
    resources:
        mem_mb=mem(2000),
        runtime=10,
    params:
        ep_sizes=config["ep_sizes"],
        timeline_window=config["figures"]["timeline_window"],
        top20_draws=config["figures"]["top20_draws"],
        seed=config["seed"],
    script:
        "../scripts/compute_load_stats.py"


rule collect_load_stats:
    input:
        layers=expand("results/stats/{trace}/layers.parquet", trace=LOAD_SOURCES),
        code=script_code("collect_load_stats"),
    output:
        table="results/tables/load_stats.parquet",
        html=report(
            "results/tables/load_stats.html",
            caption="../report/load_stats.rst",
            category="Load statistics",
            labels={"table": "per-layer load statistics"},
        ),
    log:
        "logs/stats/collect.log",
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem(1000),
        runtime=5,
    script:
        "../scripts/collect_load_stats.py"


rule plot_expert_loads:
    input:
        experts=get_experts_of_shape,
        code=script_code("plot_expert_loads"),
    output:
        **figure(
            "expert_loads-{shape}",
            "Synthetic workloads",
            "expert loads",
            subcategory="Expert loads",
            shape="{shape}",
        ),
    log:
        "logs/figures/expert_loads-{shape}.log",
    conda:
        "../../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=mem(1000),
        runtime=5,
    script:
        "../scripts/plot_expert_loads.py"


rule plot_device_loads:
    input:
        devices=get_devices_of_shape,
        code=script_code("plot_device_loads"),
    output:
        **figure(
            "device_loads-{shape}",
            "Synthetic workloads",
            "device loads",
            subcategory="Per-device loads",
            shape="{shape}",
        ),
    log:
        "logs/figures/device_loads-{shape}.log",
    conda:
        "../../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=mem(1000),
        runtime=5,
    script:
        "../scripts/plot_device_loads.py"


rule plot_drift_timeline:
    input:
        timeline="results/stats/{trace}/timeline.parquet",
        code=script_code("plot_drift_timeline"),
    output:
        **figure(
            "drift_timeline-{trace}",
            "Synthetic workloads",
            "load over iterations",
            subcategory="Drift",
            trace="{trace}",
        ),
    log:
        "logs/figures/drift_timeline-{trace}.log",
    conda:
        "../../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=mem(1000),
        runtime=5,
    script:
        "../scripts/plot_drift_timeline.py"


rule plot_layer_loads:
    input:
        experts="results/stats/{trace}/experts.parquet",
        trace=get_trace,
        code=script_code("plot_layer_loads"),
    output:
        **figure(
            "layer_loads-{trace}",
            "Captured traces",
            "expert load per layer",
            subcategory="{trace}",
            trace="{trace}",
        ),
    log:
        "logs/figures/layer_loads-{trace}.log",
    conda:
        "../../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=mem(1000),
        runtime=5,
    script:
        "../scripts/plot_layer_loads.py"


rule plot_alpha_comparison:
    input:
        table="results/tables/load_stats.parquet",
        code=script_code("plot_alpha_comparison"),
    output:
        **figure("alpha_comparison", "Captured traces", "effective alpha"),
    log:
        "logs/figures/alpha_comparison.log",
    conda:
        "../../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=mem(1000),
        runtime=5,
    script:
        "../scripts/plot_alpha_comparison.py"


rule plot_top20_share:
    input:
        table="results/tables/load_stats.parquet",
        sweep="results/powerlaw/top20_sweep.parquet",
        code=script_code("plot_top20_share"),
    output:
        **figure(
            "top20_share",
            "Synthetic workloads",
            "top-20% share",
            subcategory="Power-law sampler",
        ),
    log:
        "logs/figures/top20_share.log",
    conda:
        "../../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=mem(1000),
        runtime=5,
    script:
        "../scripts/plot_top20_share.py"
