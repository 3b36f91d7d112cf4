rule sample_powerlaw:
    input:
        code=library_sources("plots", "synthetic.powerlaw"),
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
        code=library_sources("plots"),
    output:
        svg=report(
            "results/figures/powerlaw_comparison.svg",
            caption="../report/powerlaw_comparison.rst",
            category="Synthetic workloads",
            subcategory="Power-law sampler",
            labels={"figure": "power-law comparison"},
        ),
        png="results/figures/powerlaw_comparison.png",
        html="results/figures/powerlaw_comparison.html",
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


rule plot_top20_share:
    input:
        table="results/tables/load_stats.parquet",
        sweep="results/powerlaw/top20_sweep.parquet",
        code=library_sources("plots"),
    output:
        svg=report(
            "results/figures/top20_share.svg",
            caption="../report/top20_share.rst",
            category="Synthetic workloads",
            subcategory="Power-law sampler",
            labels={"figure": "top-20% share"},
        ),
        png="results/figures/top20_share.png",
        html="results/figures/top20_share.html",
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


rule plot_expert_loads:
    input:
        experts=traces_of_shape,
        code=library_sources("plots"),
    output:
        svg=report(
            "results/figures/expert_loads-{shape}.svg",
            caption="../report/expert_loads.rst",
            category="Synthetic workloads",
            subcategory="Expert loads",
            labels={"figure": "expert loads", "shape": "{shape}"},
        ),
        png="results/figures/expert_loads-{shape}.png",
        html="results/figures/expert_loads-{shape}.html",
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
        devices=device_tables_of_shape,
        code=library_sources("plots"),
    output:
        svg=report(
            "results/figures/device_loads-{shape}.svg",
            caption="../report/device_loads.rst",
            category="Synthetic workloads",
            subcategory="Per-device loads",
            labels={"figure": "device loads", "shape": "{shape}"},
        ),
        png="results/figures/device_loads-{shape}.png",
        html="results/figures/device_loads-{shape}.html",
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
        code=library_sources("plots"),
    output:
        svg=report(
            "results/figures/drift_timeline-{trace}.svg",
            caption="../report/drift_timeline.rst",
            category="Synthetic workloads",
            subcategory="Drift",
            labels={"figure": "load over iterations", "trace": "{trace}"},
        ),
        png="results/figures/drift_timeline-{trace}.png",
        html="results/figures/drift_timeline-{trace}.html",
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


rule plot_alpha_comparison:
    input:
        table="results/tables/load_stats.parquet",
        code=library_sources("plots"),
    output:
        svg=report(
            "results/figures/alpha_comparison.svg",
            caption="../report/alpha_comparison.rst",
            category="Captured traces",
            labels={"figure": "effective alpha"},
        ),
        png="results/figures/alpha_comparison.png",
        html="results/figures/alpha_comparison.html",
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


rule plot_coactivation_gain:
    input:
        layers=expand(
            "results/coactivation/{trace}/layers.parquet", trace=CAPTURED + PROXIES
        ),
        code=library_sources("plots"),
    output:
        svg=report(
            "results/figures/coactivation_gain.svg",
            caption="../report/coactivation_gain.rst",
            category="Co-activation",
            labels={"figure": "clustering gain per layer"},
        ),
        png="results/figures/coactivation_gain.png",
        html="results/figures/coactivation_gain.html",
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
        trace=trace_file,
        code=library_sources("plots", "traces"),
    output:
        svg=report(
            "results/figures/coactivation_heatmap-{trace}.svg",
            caption="../report/coactivation_heatmap.rst",
            category="Co-activation",
            subcategory="{trace}",
            labels={"figure": "co-activation heatmap", "trace": "{trace}"},
        ),
        png="results/figures/coactivation_heatmap-{trace}.png",
        html="results/figures/coactivation_heatmap-{trace}.html",
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
        trace=trace_file,
        code=library_sources("plots", "traces"),
    output:
        svg=report(
            "results/figures/domain_expert-{trace}.svg",
            caption="../report/domain_expert.rst",
            category="Captured traces",
            subcategory="{trace}",
            labels={"figure": "domain x expert", "trace": "{trace}"},
        ),
        png="results/figures/domain_expert-{trace}.png",
        html="results/figures/domain_expert-{trace}.html",
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


rule plot_layer_loads:
    input:
        experts="results/stats/{trace}/experts.parquet",
        trace=trace_file,
        code=library_sources("plots", "traces"),
    output:
        svg=report(
            "results/figures/layer_loads-{trace}.svg",
            caption="../report/layer_loads.rst",
            category="Captured traces",
            subcategory="{trace}",
            labels={"figure": "expert load per layer", "trace": "{trace}"},
        ),
        png="results/figures/layer_loads-{trace}.png",
        html="results/figures/layer_loads-{trace}.html",
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


rule plot_tiny_training:
    input:
        curve="results/models/tiny-training.parquet",
        code=library_sources("plots"),
    output:
        svg=report(
            "results/figures/tiny_training.svg",
            caption="../report/tiny_training.rst",
            category="Captured traces",
            labels={"figure": "embedded checkpoint training"},
        ),
        png="results/figures/tiny_training.png",
        html="results/figures/tiny_training.html",
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
