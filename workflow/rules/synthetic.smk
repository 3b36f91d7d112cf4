rule generate_synthetic_trace:
    input:
        code=script_code("generate_synthetic_trace"),
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


rule sample_powerlaw:
    input:
        code=script_code("sample_powerlaw"),
    output:
        samples="results/powerlaw/samples.parquet",
        curves="results/powerlaw/curves.parquet",
        ranks="results/powerlaw/ranks.parquet",
        sweep="results/powerlaw/top20_sweep.parquet",
    log:
        "logs/figures/sample_powerlaw.log",
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem(1000),
        runtime=5,
    params:
        alphas=powerlaw_alphas(),
        n=config["figures"]["powerlaw_samples"],
        draws=config["figures"]["top20_draws"],
        reference_tokens=config["reference_tokens"],
        sweep=config["figures"]["reference_tokens_sweep"],
        num_experts=sorted({s["num_experts"] for s in config["synthetic"]["shapes"]}),
        seed=config["seed"],
    script:
        "../scripts/sample_powerlaw.py"


rule plot_powerlaw_comparison:
    input:
        samples="results/powerlaw/samples.parquet",
        curves="results/powerlaw/curves.parquet",
        ranks="results/powerlaw/ranks.parquet",
        code=script_code("plot_powerlaw_comparison"),
    output:
        **figure(
            "powerlaw_comparison",
            "Synthetic workloads",
            "power-law comparison",
            subcategory="Power-law sampler",
        ),
    log:
        "logs/figures/powerlaw_comparison.log",
    conda:
        "../../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=mem(1000),
        runtime=5,
    params:
        reference_tokens=config["reference_tokens"],
    script:
        "../scripts/plot_powerlaw_comparison.py"
