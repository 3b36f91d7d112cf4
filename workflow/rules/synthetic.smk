rule generate_synthetic_trace:
    input:
        code=library_sources("synthetic.scenarios", "traces"),
    output:
        trace="results/synthetic/{trace}/trace.parquet",
    params:
        spec=get_synthetic_spec,
    log:
        "logs/synthetic/{trace}.log",
    benchmark:
        "results/bench/synthetic/{trace}.tsv"
    threads: config["threads"]
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/core.yaml"
    script:
        "../scripts/generate_synthetic_trace.py"
