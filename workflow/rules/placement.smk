rule static_placement:
    input:
        trace=trace_file,
        code=library_sources("placement.static_eval", "traces"),
    output:
        "results/placement/static/{trace}.parquet",
    log:
        "logs/placement/static-{trace}.log",
    benchmark:
        "results/bench/placement/static-{trace}.tsv"
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem(2000),
        runtime=20,
    params:
        devices=config["placement"]["devices"],
        split_fraction=config["placement"]["split_fraction"],
        load_slack=config["placement"]["load_slack"],
        cv_budgets=config["placement"]["cv_budgets"],
        balance_windows=config["placement"]["balance_windows"],
        seed=config["seed"],
    script:
        "../scripts/static_placement.py"


rule cache_simulation:
    input:
        trace=trace_file,
        code=library_sources("cache", "traces"),
    output:
        cache="results/cache/{trace}.parquet",
        prefetch="results/cache/prefetch/{trace}.parquet",
    log:
        "logs/placement/cache-{trace}.log",
    benchmark:
        "results/bench/placement/cache-{trace}.tsv"
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem(2000),
        runtime=20,
    params:
        cache_capacities=config["placement"]["cache_capacities"],
        prefetch_budgets=config["placement"]["prefetch_budgets"],
        split_fraction=config["placement"]["split_fraction"],
    script:
        "../scripts/cache_simulation.py"


rule collect_placement:
    input:
        static=expand(
            "results/placement/static/{trace}.parquet", trace=PLACEMENT_TRACES
        ),
        cache=expand("results/cache/{trace}.parquet", trace=PLACEMENT_TRACES),
        prefetch=expand(
            "results/cache/prefetch/{trace}.parquet", trace=PLACEMENT_TRACES
        ),
        code=library_sources("tables"),
    output:
        static="results/tables/static_placement.parquet",
        static_html=report(
            "results/tables/static_placement.html",
            caption="../report/static_placement_table.rst",
            category="Placement",
            labels={"table": "static placement"},
        ),
        matched="results/tables/static_matched.parquet",
        matched_html=report(
            "results/tables/static_matched.html",
            caption="../report/static_matched_table.rst",
            category="Placement",
            labels={"table": "static placement at matched load CV"},
        ),
        cache="results/tables/cache.parquet",
        cache_html=report(
            "results/tables/cache.html",
            caption="../report/cache_table.rst",
            category="Placement",
            labels={"table": "expert cache"},
        ),
        prefetch="results/tables/prefetch.parquet",
        prefetch_html=report(
            "results/tables/prefetch.html",
            caption="../report/prefetch_table.rst",
            category="Placement",
            labels={"table": "next-token prefetch"},
        ),
    log:
        "logs/placement/collect.log",
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem(1000),
        runtime=5,
    params:
        split_fraction=config["placement"]["split_fraction"],
        cv_match=config["placement"]["cv_match"],
    script:
        "../scripts/collect_placement.py"


rule plot_placement:
    input:
        static="results/tables/static_placement.parquet",
        matched="results/tables/static_matched.parquet",
        cache="results/tables/cache.parquet",
        prefetch="results/tables/prefetch.parquet",
        code=library_sources("plots", "tables"),
    output:
        svg=report(
            "results/figures/static_placement.svg",
            caption="../report/static_placement.rst",
            category="Placement",
            labels={"figure": "static placement: devices per token"},
        ),
        png="results/figures/static_placement.png",
        html="results/figures/static_placement.html",
        frontier_svg=report(
            "results/figures/static_frontier.svg",
            caption="../report/static_frontier.rst",
            category="Placement",
            labels={"figure": "static placement: locality vs balance frontier"},
        ),
        frontier_png="results/figures/static_frontier.png",
        frontier_html="results/figures/static_frontier.html",
        cache_svg=report(
            "results/figures/cache_miss.svg",
            caption="../report/cache_miss.rst",
            category="Placement",
            labels={"figure": "expert cache miss rate"},
        ),
        cache_png="results/figures/cache_miss.png",
        cache_html="results/figures/cache_miss.html",
        prefetch_svg=report(
            "results/figures/prefetch_hits.svg",
            caption="../report/prefetch_hits.rst",
            category="Placement",
            labels={"figure": "next-token prefetch hit rate"},
        ),
        prefetch_png="results/figures/prefetch_hits.png",
        prefetch_html="results/figures/prefetch_hits.html",
    log:
        "logs/figures/placement.log",
    conda:
        "../../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=mem(1000),
        runtime=5,
    script:
        "../scripts/plot_placement.py"


rule dynamic_placement:
    input:
        trace=trace_file,
        code=library_sources("placement.dynamic_eval", "hotness", "traces"),
    output:
        summary="results/placement/dynamic/{trace}.parquet",
        timeline="results/placement/dynamic/{trace}-timeline.parquet",
        sweep="results/placement/dynamic/{trace}-sweep.parquet",
        slots="results/placement/dynamic/{trace}-slots.parquet",
    log:
        "logs/placement/dynamic-{trace}.log",
    benchmark:
        "results/bench/placement/dynamic-{trace}.tsv"
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem(2000),
        runtime=30,
    params:
        dynamic=config["placement"]["dynamic"],
        intervals=config["placement"]["sweep_intervals"],
        sweep_devices=config["placement"]["sweep_devices"],
        sweep_slots=config["placement"]["sweep_redundant_slots"],
    script:
        "../scripts/dynamic_placement.py"


rule plot_dynamic_placement:
    input:
        summaries=expand("results/placement/dynamic/{trace}.parquet", trace=CAPTURED),
        timelines=expand(
            "results/placement/dynamic/{trace}-timeline.parquet", trace=CAPTURED
        ),
        sweeps=expand("results/placement/dynamic/{trace}-sweep.parquet", trace=CAPTURED),
        slots=expand("results/placement/dynamic/{trace}-slots.parquet", trace=CAPTURED),
        code=library_sources("plots", "tables"),
    output:
        table="results/tables/dynamic_placement.parquet",
        html=report(
            "results/tables/dynamic_placement.html",
            caption="../report/dynamic_placement_table.rst",
            category="Placement",
            labels={"table": "dynamic placement"},
        ),
        svg=report(
            "results/figures/dynamic_placement.svg",
            caption="../report/dynamic_placement.rst",
            category="Placement",
            labels={"figure": "PAR over time"},
        ),
        png="results/figures/dynamic_placement.png",
        fig_html="results/figures/dynamic_placement.html",
        frontier_svg=report(
            "results/figures/dynamic_frontier.svg",
            caption="../report/dynamic_frontier.rst",
            category="Placement",
            labels={"figure": "PAR vs slots moved"},
        ),
        frontier_png="results/figures/dynamic_frontier.png",
        frontier_html="results/figures/dynamic_frontier.html",
        slots_svg=report(
            "results/figures/dynamic_slots.svg",
            caption="../report/dynamic_slots.rst",
            category="Placement",
            labels={"figure": "PAR vs devices and redundant slots"},
        ),
        slots_png="results/figures/dynamic_slots.png",
        slots_html="results/figures/dynamic_slots.html",
        slots_table="results/tables/dynamic_slots.parquet",
        slots_table_html=report(
            "results/tables/dynamic_slots.html",
            caption="../report/dynamic_slots_table.rst",
            category="Placement",
            labels={"table": "devices x redundant slots"},
        ),
    log:
        "logs/figures/dynamic_placement.log",
    conda:
        "../../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=mem(1000),
        runtime=5,
    params:
        dynamic=config["placement"]["dynamic"],
    script:
        "../scripts/plot_dynamic_placement.py"


rule dynamic_synthetic:
    input:
        code=library_sources("placement.dynamic_eval", "synthetic.scenarios"),
    output:
        summary="results/placement/dynamic-synthetic/seed{seed}.parquet",
        timeline="results/placement/dynamic-synthetic/seed{seed}-timeline.parquet",
    log:
        "logs/placement/dynamic-synthetic-seed{seed}.log",
    benchmark:
        "results/bench/placement/dynamic-synthetic-seed{seed}.tsv"
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem(8000),
        runtime=60,
    params:
        hot=config["placement"]["dynamic_synthetic"],
        dynamic=config["placement"]["dynamic"],
        reference_tokens=config["reference_tokens"],
    script:
        "../scripts/dynamic_synthetic.py"


rule collect_dynamic_synthetic:
    input:
        summaries=expand(
            "results/placement/dynamic-synthetic/seed{seed}.parquet", seed=HOT_SEEDS
        ),
        timelines=expand(
            "results/placement/dynamic-synthetic/seed{seed}-timeline.parquet",
            seed=HOT_SEEDS,
        ),
        code=library_sources("plots", "tables"),
    output:
        table="results/tables/dynamic_synthetic.parquet",
        html=report(
            "results/tables/dynamic_synthetic.html",
            caption="../report/dynamic_synthetic_table.rst",
            category="Placement",
            labels={"table": "dynamic placement, serving scale"},
        ),
        svg=report(
            "results/figures/dynamic_synthetic.svg",
            caption="../report/dynamic_synthetic.rst",
            category="Placement",
            labels={"figure": "PAR over time, serving scale"},
        ),
        png="results/figures/dynamic_synthetic.png",
        fig_html="results/figures/dynamic_synthetic.html",
    log:
        "logs/figures/dynamic_synthetic.log",
    conda:
        "../../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=mem(2000),
        runtime=5,
    params:
        hot=config["placement"]["dynamic_synthetic"],
        dynamic=config["placement"]["dynamic"],
    script:
        "../scripts/collect_dynamic_synthetic.py"
