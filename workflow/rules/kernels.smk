rule kernel_workloads:
    input:
        trace=get_trace,
        code=script_code("kernel_workloads"),
    output:
        "results/kernels/workloads/{trace}.parquet",
    log:
        "logs/kernels/workloads-{trace}.log",
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem(2000),
        runtime=10,
    params:
        tokens=KERNELS.get("tokens"),
        ep_sizes=KERNELS.get("ep_sizes"),
        placements=KERNELS.get("placements"),
        split_fraction=config["placement"]["split_fraction"],
        load_slack=KERNEL_SLACK,
        seed=config["seed"],
    script:
        "../scripts/kernel_workloads.py"


rule kernel_bench_torch:
    input:
        workload="results/kernels/workloads/{trace}.parquet",
        code=script_code("kernel_bench_torch"),
    output:
        "results/bench/kernels/torch/{trace}.parquet",
    log:
        "logs/kernels/torch-{trace}.log",
    benchmark:
        "results/bench/kernels/torch/{trace}.tsv"
    conda:
        "../../envs/kernels.yaml"
    threads: config["threads"]
    resources:
        mem_mb=mem(4000),
        runtime=30,
        gpu=kernel_gpus(),
    params:
        shapes=kernel_shapes(),
        spec=kernel_spec(),
    script:
        "../scripts/kernel_bench_torch.py"


rule kernel_bench_jax:
    input:
        workload="results/kernels/workloads/{trace}.parquet",
        code=script_code("kernel_bench_jax"),
    output:
        "results/bench/kernels/jax/{trace}.parquet",
    log:
        "logs/kernels/jax-{trace}.log",
    benchmark:
        "results/bench/kernels/jax/{trace}.tsv"
    conda:
        "../../envs/kernels.yaml"
    threads: config["threads"]
    resources:
        mem_mb=mem(4000),
        runtime=30,
        tpu=kernel_tpus(),
    params:
        shapes=kernel_shapes(),
        spec=kernel_spec(),
        jax=KERNEL_JAX,
    script:
        "../scripts/kernel_bench_jax.py"


rule kernel_alpha:
    input:
        workload="results/kernels/workloads/{trace}.parquet",
        code=script_code("kernel_alpha"),
    output:
        "results/bench/kernels/alpha/{trace}.parquet",
    log:
        "logs/kernels/alpha-{trace}.log",
    conda:
        "../../envs/core.yaml"
    threads: config["threads"]
    resources:
        mem_mb=mem(4000),
        runtime=30,
    params:
        shapes=kernel_shapes(),
        alpha=KERNELS.get("alpha"),
        ep=max(KERNELS.get("ep_sizes", [1])),
        request_length=config["request_length"],
        reference_tokens=config["reference_tokens"],
        seed=config["seed"],
    script:
        "../scripts/kernel_alpha.py"


rule collect_kernel_bench:
    input:
        runs=expand("results/bench/kernels/torch/{trace}.parquet", trace=KERNEL_TRACES),
        jax=expand("results/bench/kernels/jax/{trace}.parquet", trace=JAX_TRACES),
        alpha=expand("results/bench/kernels/alpha/{trace}.parquet", trace=ALPHA_TRACES),
        recorded=RECORDED_KERNELS,
        code=script_code("collect_kernel_bench"),
    output:
        **bench_figure("kernel_latency", "Kernels", "latency vs tokens", key="latency"),
        **bench_figure(
            "kernel_speedup",
            "Kernels",
            "speedup over the per-expert loop",
            key="speedup",
        ),
        **bench_figure(
            "kernel_roofline", "Kernels", "fraction of roofline", key="roofline"
        ),
        **bench_figure(
            "kernel_placement",
            "Kernels",
            "bottleneck rank under placements",
            key="placement",
        ),
        **bench_figure("kernel_alpha", "Kernels", "latency-matched alpha", key="alpha"),
        table="results/bench/kernels/torch.parquet",
        csv="results/bench/kernels/torch.csv",
        markdown="results/bench/kernels/summary.md",
        summary=report(
            "results/bench/kernels/summary.html",
            caption="../report/kernel_summary.rst",
            category="Kernels",
            labels={"table": "latency and speedups"},
        ),
    log:
        "logs/kernels/collect.log",
    conda:
        "../../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=mem(2000),
        runtime=5,
    script:
        "../scripts/collect_kernel_bench.py"
