rule routing_capacity:
    input:
        trace=get_routing_source_trace,
        code=script_code("routing_capacity"),
    output:
        drops="results/routing/capacity/{source}.parquet",
        throughput="results/bench/routing/capacity/{source}.parquet",
    log:
        "logs/routing/capacity-{source}.log",
    benchmark:
        "results/bench/routing/capacity/{source}.tsv"
    conda:
        "../../envs/routing.yaml"
    threads: 1
    resources:
        mem_mb=mem(4000),
        runtime=20,
    params:
        capacity=ROUTING_CAPACITY,
        seed=config["seed"],
    script:
        "../scripts/routing_capacity.py"


rule routing_train:
    input:
        corpus="results/corpus/corpus.parquet",
        tokenizer=get_routing_tokenizer,
        code=script_code("routing_train"),
    output:
        metrics="results/routing/train/{study}/{strategy}/metrics.parquet",
        curves="results/routing/train/{study}/{strategy}/curves.parquet",
        loads="results/routing/train/{study}/{strategy}/loads.parquet",
        preference="results/routing/train/{study}/{strategy}/preference.parquet",
        heatmap="results/routing/train/{study}/{strategy}/heatmap.parquet",
        throughput="results/bench/routing/train/{study}/{strategy}.parquet",
    log:
        "logs/routing/train-{study}-{strategy}.log",
    benchmark:
        "results/bench/routing/train/{study}/{strategy}.tsv"
    conda:
        "../../envs/routing.yaml"
    threads: config["threads"]
    resources:
        mem_mb=mem(4000),
        runtime=60,
        gpu=get_routing_train_gpus,
    params:
        train=get_study,
        seed=config["seed"],
    script:
        "../scripts/routing_train.py"


rule collect_routing_capacity:
    input:
        drops=expand(
            "results/routing/capacity/{source}.parquet", source=ROUTING_SOURCES
        ),
        code=script_code("collect_routing_capacity"),
    output:
        **figure(
            "routing_drop_rate",
            "Routing",
            "drop rate vs capacity factor",
            subcategory="Capacity factor",
            key="fig",
        ),
        table="results/tables/routing_capacity.parquet",
        html=report(
            "results/tables/routing_capacity.html",
            caption="../report/routing_capacity_table.rst",
            category="Routing",
            subcategory="Capacity factor",
            labels={"table": "drop rates per source, E, k and CF"},
        ),
    log:
        "logs/routing/collect_capacity.log",
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem(2000),
        runtime=5,
    script:
        "../scripts/collect_routing_capacity.py"


rule collect_routing_study:
    input:
        metrics=routing_train_files("metrics"),
        curves=routing_train_files("curves"),
        loads=routing_train_files("loads"),
        preference=routing_train_files("preference"),
        heatmap=routing_train_files("heatmap"),
        code=script_code("collect_routing_study"),
    output:
        **figure_set(ROUTING_FIGURES, "Routing", subcategory="Training study"),
        table="results/tables/routing_study.parquet",
        html=report(
            "results/tables/routing_study.html",
            caption="../report/routing_study_table.rst",
            category="Routing",
            subcategory="Training study",
            labels={"table": "strategies x capacity factor"},
        ),
        significance="results/tables/routing_significance.parquet",
        significance_html=report(
            "results/tables/routing_significance.html",
            caption="../report/routing_significance.rst",
            category="Routing",
            subcategory="Training study",
            labels={"table": "which differences exceed the seed noise"},
        ),
    log:
        "logs/routing/collect_study.log",
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem(2000),
        runtime=5,
    params:
        studies=ROUTING_STUDIES,
    script:
        "../scripts/collect_routing_study.py"


rule collect_routing_bench:
    input:
        capacity=expand(
            "results/bench/routing/capacity/{source}.parquet", source=ROUTING_SOURCES
        ),
        throughput=routing_train_files("throughput", bench=True),
        metrics=routing_train_files("metrics"),
        code=script_code("collect_routing_bench"),
    output:
        **figure_set(
            ("routing_capacity_throughput", "routing_frontier"),
            "Routing",
            subcategory="Throughput (timed on this machine)",
            folder="results/bench/figures",
        ),
    log:
        "logs/routing/collect_bench.log",
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem(2000),
        runtime=5,
    params:
        studies=ROUTING_STUDIES,
    script:
        "../scripts/collect_routing_bench.py"


rule routing_perft:
    input:
        corpus="results/corpus/corpus.parquet",
        model=perft_model_inputs(),
        hub=perft_hub_record,
        code=script_code("routing_perft"),
    output:
        results="results/routing/perft/results.parquet",
        curves="results/routing/perft/curves.parquet",
        throughput="results/bench/routing/perft.parquet",
    log:
        "logs/routing/perft.log",
    benchmark:
        "results/bench/routing/perft.tsv"
    conda:
        "../../envs/routing.yaml"
    threads: config["threads"]
    resources:
        mem_mb=mem(4000),
        runtime=60,
    params:
        perft=ROUTING_PERFT,
        path=get_perft_model_path,
        seed=config["seed"],
    script:
        "../scripts/routing_perft.py"


rule plot_routing_perft:
    input:
        results="results/routing/perft/results.parquet",
        curves="results/routing/perft/curves.parquet",
        code=script_code("plot_routing_perft"),
    output:
        **figure(
            "routing_perft_frontier",
            "Routing",
            "loss vs trainable parameters",
            subcategory="Routed adapters (PERFT)",
            key="fig",
        ),
        table="results/tables/routing_perft.parquet",
        html=report(
            "results/tables/routing_perft.html",
            caption="../report/routing_perft_table.rst",
            category="Routing",
            subcategory="Routed adapters (PERFT)",
            labels={"table": "PERFT variants"},
        ),
    log:
        "logs/routing/plot_perft.log",
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem(1000),
        runtime=5,
    params:
        perft=ROUTING_PERFT,
    script:
        "../scripts/plot_routing_perft.py"
