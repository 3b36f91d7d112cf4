rule compute_load_stats:
    input:
        trace=trace_file,
        code=library_sources("stats", "hotness", "traces"),
    output:
        layers="results/stats/{trace}/layers.parquet",
        experts="results/stats/{trace}/experts.parquet",
        devices="results/stats/{trace}/devices.parquet",
        timeline="results/stats/{trace}/timeline.parquet",
    log:
        "logs/stats/{trace}.log",
    benchmark:
        "results/bench/stats/{trace}.tsv"
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
        layers=expand("results/stats/{trace}/layers.parquet", trace=ALL_TRACES),
        code=library_sources("tables"),
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
