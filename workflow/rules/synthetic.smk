rule generate_synthetic_trace:
    input:
        code=library_sources("synthetic.scenarios", "traces"),
    output:
        trace="results/synthetic/{trace}/trace.parquet",
    log:
        "logs/synthetic/{trace}.log",
    benchmark:
        "results/bench/synthetic/{trace}.tsv"
    conda:
        "../../envs/core.yaml"
    threads: config["threads"]
    resources:
        mem_mb=mem(2000),
        runtime=10,
    params:
        spec=get_synthetic_spec,
    script:
        "../scripts/generate_synthetic_trace.py"
