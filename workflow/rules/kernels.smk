rule kernel_workloads:
    input:
        trace=trace_file,
        code=library_sources("kernels.from_trace", "traces"),
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
        code=library_sources("kernels.bench", "kernels.shapes"),
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
        code=library_sources("kernels.bench", "kernels.jax_backend", "kernels.shapes"),
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
        layers="results/stats/{trace}/layers.parquet",
        code=library_sources("kernels.alpha_match", "kernels.shapes"),
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
        code=library_sources("kernels.plots", "kernels.summary", "provenance"),
    output:
        table="results/bench/kernels/torch.parquet",
        csv="results/bench/kernels/torch.csv",
        markdown="results/bench/kernels/summary.md",
        summary=report(
            "results/bench/kernels/summary.html",
            caption="../report/kernel_summary.rst",
            category="Kernels",
            labels={"table": "latency and speedups"},
        ),
        latency=report(
            "results/bench/figures/kernel_latency.svg",
            caption="../report/kernel_latency.rst",
            category="Kernels",
            labels={"figure": "latency vs tokens"},
        ),
        latency_png="results/bench/figures/kernel_latency.png",
        latency_html="results/bench/figures/kernel_latency.html",
        speedup=report(
            "results/bench/figures/kernel_speedup.svg",
            caption="../report/kernel_speedup.rst",
            category="Kernels",
            labels={"figure": "speedup over the per-expert loop"},
        ),
        speedup_png="results/bench/figures/kernel_speedup.png",
        speedup_html="results/bench/figures/kernel_speedup.html",
        roofline=report(
            "results/bench/figures/kernel_roofline.svg",
            caption="../report/kernel_roofline.rst",
            category="Kernels",
            labels={"figure": "fraction of roofline"},
        ),
        roofline_png="results/bench/figures/kernel_roofline.png",
        roofline_html="results/bench/figures/kernel_roofline.html",
        placement=report(
            "results/bench/figures/kernel_placement.svg",
            caption="../report/kernel_placement.rst",
            category="Kernels",
            labels={"figure": "bottleneck rank under placements"},
        ),
        placement_png="results/bench/figures/kernel_placement.png",
        placement_html="results/bench/figures/kernel_placement.html",
        alpha=report(
            "results/bench/figures/kernel_alpha.svg",
            caption="../report/kernel_alpha.rst",
            category="Kernels",
            labels={"figure": "latency-matched alpha"},
        ),
        alpha_png="results/bench/figures/kernel_alpha.png",
        alpha_html="results/bench/figures/kernel_alpha.html",
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
