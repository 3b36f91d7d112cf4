rule corpus:
    input:
        code=script_code("build_corpus"),
    output:
        corpus="results/corpus/corpus.parquet",
        summary="results/corpus/summary.parquet",
    log:
        "logs/capture/corpus.log",
    priority: 10
    conda:
        "../../envs/capture.yaml"
    threads: 1
    resources:
        mem_mb=mem(2000),
        runtime=10,
    params:
        corpus=config["corpus"],
        seed=config["seed"],
    script:
        "../scripts/build_corpus.py"


rule tokenizer:
    input:
        corpus="results/corpus/corpus.parquet",
        code=script_code("train_tokenizer"),
    output:
        directory("results/models/tokenizer"),
    log:
        "logs/capture/tokenizer.log",
    priority: 10
    conda:
        "../../envs/capture.yaml"
    threads: config["threads"]
    resources:
        mem_mb=mem(2000),
        runtime=10,
    params:
        vocab_size=config["tiny"]["vocab_size"],
    script:
        "../scripts/train_tokenizer.py"


rule train_tiny:
    input:
        corpus="results/corpus/corpus.parquet",
        tokenizer="results/models/tokenizer",
        code=script_code("train_tiny"),
    output:
        trained=directory("results/models/tiny"),
        untrained=directory("results/models/tiny-untrained"),
        curve="results/models/tiny-training.parquet",
    log:
        "logs/capture/train_tiny.log",
    benchmark:
        "results/bench/train_tiny.tsv"
    priority: 10
    conda:
        "../../envs/capture.yaml"
    threads: config["threads"]
    resources:
        mem_mb=mem(4000),
        runtime=60,
    params:
        tiny=config["tiny"],
        seed=config["seed"],
    script:
        "../scripts/train_tiny.py"


# A hub checkpoint is fetched into the Hugging Face cache (HF_HOME / HF_HUB_CACHE: on a cluster, a shared file
# system) where Snakemake itself runs: a local rule, so under Slurm on the login node, which has the network.
# The jobs that read it (capture, proxy) take its record as input and read the cache only.
rule download_model:
    input:
        code=script_code("download_model"),
    output:
        record="results/models/hub/{model}.json",
    log:
        "logs/capture/download-{model}.log",
    wildcard_constraints:
        model=hub_model_pattern(),
    priority: 20
    localrule: True
    conda:
        "../../envs/capture.yaml"
    threads: 1
    resources:
        mem_mb=mem(2000),
        runtime=240,
    params:
        hub=get_hub_repo,
    script:
        "../scripts/download_model.py"


rule capture:
    input:
        corpus="results/corpus/corpus.parquet",
        model=get_model_inputs,
        hub=get_hub_record,
        code=script_code("capture_trace"),
    output:
        trace="results/captured/{model}/trace.parquet",
        summary="results/captured/{model}/summary.parquet",
        rate="results/bench/capture/{model}.json",
    log:
        "logs/capture/capture-{model}.log",
    benchmark:
        "results/bench/capture/{model}.tsv"
    priority: 10
    conda:
        "../../envs/capture.yaml"
    threads: config["threads"]
    resources:
        mem_mb=get_capture_mem,
        runtime=120,
        gpu=get_capture_gpus,
    params:
        model=get_capture_params,
        concurrency=config["concurrency"],
        device=config["capture"]["device"],
        max_iterations=config["capture"].get("max_iterations"),
        parts=config["capture"]["parts"],
        seed=config["seed"],
    script:
        "../scripts/capture_trace.py"


rule proxy:
    input:
        trace="results/captured/{model}/trace.parquet",
        model=get_model_inputs,
        hub=get_hub_record,
        code=script_code("proxy_trace"),
    output:
        trace="results/proxy/{model}/trace.parquet",
    log:
        "logs/capture/proxy-{model}.log",
    conda:
        "../../envs/capture.yaml"
    threads: config["threads"]
    resources:
        mem_mb=get_capture_mem,
        runtime=60,
        gpu=get_capture_gpus,
    params:
        model=get_capture_params,
        device=config["capture"]["device"],
        seed=config["seed"],
    script:
        "../scripts/proxy_trace.py"


rule capture_summary:
    input:
        summaries=expand("results/captured/{model}/summary.parquet", model=MODELS),
        code=script_code("collect_capture_summary"),
    output:
        table="results/tables/capture_summary.parquet",
        html=report(
            "results/tables/capture_summary.html",
            caption="../report/capture_summary.rst",
            category="Captured traces",
            labels={"table": "capture summary"},
        ),
    log:
        "logs/capture/summary.log",
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem(1000),
        runtime=5,
    script:
        "../scripts/collect_capture_summary.py"


rule plot_tiny_training:
    input:
        curve="results/models/tiny-training.parquet",
        code=script_code("plot_tiny_training"),
    output:
        **figure("tiny_training", "Captured traces", "embedded checkpoint training"),
    log:
        "logs/figures/tiny_training.log",
    conda:
        "../../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=mem(1000),
        runtime=5,
    params:
        tiny=config["tiny"],
    script:
        "../scripts/plot_tiny_training.py"
