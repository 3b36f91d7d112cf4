rule coactivation:
    input:
        trace=get_trace,
        # a captured trace (or its proxy) also reads its corpus: which part each document is from
        corpus=lambda w: (
            ["results/corpus/corpus.parquet"] if w.trace in CAPTURED + PROXIES else []
        ),
        code=script_code("compute_coactivation"),
    output:
        layers="results/coactivation/{trace}/layers.parquet",
        pairs="results/coactivation/{trace}/pairs.parquet",
        domain_expert="results/coactivation/{trace}/domain_expert.parquet",
    log:
        "logs/coactivation/{trace}.log",
    benchmark:
        "results/bench/coactivation/{trace}.tsv"
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem(4000),
        runtime=20,
    params:
        coactivation=config["coactivation"],
        seed=config["seed"],
    script:
        "../scripts/compute_coactivation.py"


rule collect_coactivation:
    input:
        layers=expand("results/coactivation/{trace}/layers.parquet", trace=ALL_TRACES),
        code=script_code("collect_coactivation"),
    output:
        table="results/tables/coactivation.parquet",
        html=report(
            "results/tables/coactivation.html",
            caption="../report/coactivation_table.rst",
            category="Co-activation",
            labels={"table": "co-activation per trace"},
        ),
    log:
        "logs/coactivation/collect.log",
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem(1000),
        runtime=5,
    script:
        "../scripts/collect_coactivation.py"


rule tiny_checkpoint_table:
    input:
        curve="results/models/tiny-training.parquet",
        coactivation=[
            "results/coactivation/captured-tiny/layers.parquet",
            "results/coactivation/captured-tiny-untrained/layers.parquet",
        ],
        stats=[
            "results/stats/captured-tiny/layers.parquet",
            "results/stats/captured-tiny-untrained/layers.parquet",
        ],
        code=script_code("tiny_checkpoint_table"),
    output:
        table="results/tables/tiny_checkpoint.parquet",
        html=report(
            "results/tables/tiny_checkpoint.html",
            caption="../report/tiny_checkpoint.rst",
            category="Captured traces",
            labels={"table": "embedded checkpoint vs its untrained control"},
        ),
    log:
        "logs/coactivation/tiny_checkpoint.log",
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem(1000),
        runtime=5,
    params:
        tiny=config["tiny"],
    script:
        "../scripts/tiny_checkpoint_table.py"


rule plot_coactivation_gain:
    input:
        layers=expand(
            "results/coactivation/{trace}/layers.parquet", trace=CAPTURED + PROXIES
        ),
        code=script_code("plot_coactivation_gain"),
    output:
        **figure("coactivation_gain", "Co-activation", "clustering gain per layer"),
    log:
        "logs/figures/coactivation_gain.log",
    conda:
        "../../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=mem(1000),
        runtime=5,
    script:
        "../scripts/plot_coactivation_gain.py"


rule plot_coactivation_heatmap:
    input:
        pairs="results/coactivation/{trace}/pairs.parquet",
        trace=get_trace,
        code=script_code("plot_coactivation_heatmap"),
    output:
        **figure(
            "coactivation_heatmap-{trace}",
            "Co-activation",
            "co-activation heatmap",
            subcategory="{trace}",
            trace="{trace}",
        ),
    log:
        "logs/figures/coactivation_heatmap-{trace}.log",
    conda:
        "../../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=mem(1000),
        runtime=5,
    script:
        "../scripts/plot_coactivation_heatmap.py"


rule plot_domain_expert:
    input:
        domain_expert="results/coactivation/{trace}/domain_expert.parquet",
        trace=get_trace,
        code=script_code("plot_domain_expert"),
    output:
        **figure(
            "domain_expert-{trace}",
            "Captured traces",
            "domain x expert",
            subcategory="{trace}",
            trace="{trace}",
        ),
    log:
        "logs/figures/domain_expert-{trace}.log",
    conda:
        "../../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=mem(1000),
        runtime=5,
    script:
        "../scripts/plot_domain_expert.py"
