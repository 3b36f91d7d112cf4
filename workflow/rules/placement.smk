rule static_placement:
    input:
        trace=get_trace,
        code=script_code("static_placement"),
    output:
        scores="results/placement/static/{trace}.parquet",
        placements="results/placement/static/{trace}-devices.parquet",
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
        trace=get_trace,
        code=script_code("cache_simulation"),
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
        code=script_code("collect_placement"),
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
        code=script_code("plot_placement"),
    output:
        **figure("static_placement", "Placement", "static placement: devices per token"),
        **figure(
            "static_frontier",
            "Placement",
            "static placement: locality vs balance frontier",
            key="frontier",
        ),
        **figure("cache_miss", "Placement", "expert cache miss rate", key="cache"),
        **figure(
            "prefetch_hits",
            "Placement",
            "next-token prefetch hit rate",
            key="prefetch",
        ),
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
        source=get_load_source,
        meta=get_load_meta,
        code=script_code("dynamic_placement"),
    output:
        summary="results/placement/dynamic/{trace}.parquet",
        timeline="results/placement/dynamic/{trace}-timeline.parquet",
        sweep="results/placement/dynamic/{trace}-sweep.parquet",
        slots="results/placement/dynamic/{trace}-slots.parquet",
        redeployments="results/placement/dynamic/{trace}-redeployments.parquet",
    log:
        "logs/placement/dynamic-{trace}.log",
    benchmark:
        "results/bench/placement/dynamic-{trace}.tsv"
    wildcard_constraints:
        trace=_alternatives(DYNAMIC_SOURCES),
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem(2000),
        runtime=30,
    params:
        dynamic=get_dynamic_block,
        policies=DYNAMIC_POLICIES,
        call_intervals=config["placement"]["sweep_call_intervals"],
        sweep_devices=config["placement"]["sweep_devices"],
        sweep_slots=config["placement"]["sweep_redundant_slots"],
    script:
        "../scripts/dynamic_placement.py"


rule plot_dynamic_placement:
    input:
        summaries=expand(
            "results/placement/dynamic/{trace}.parquet", trace=DYNAMIC_SOURCES
        ),
        timelines=expand(
            "results/placement/dynamic/{trace}-timeline.parquet", trace=DYNAMIC_SOURCES
        ),
        sweeps=expand(
            "results/placement/dynamic/{trace}-sweep.parquet", trace=DYNAMIC_SOURCES
        ),
        slots=expand(
            "results/placement/dynamic/{trace}-slots.parquet", trace=DYNAMIC_SOURCES
        ),
        code=script_code("plot_dynamic_placement"),
    output:
        **figure("dynamic_placement", "Placement", "PAR over time", key="fig"),
        **figure("dynamic_frontier", "Placement", "PAR vs slots moved", key="frontier"),
        **figure(
            "dynamic_slots",
            "Placement",
            "PAR vs devices and redundant slots",
            key="slots",
        ),
        table="results/tables/dynamic_placement.parquet",
        html=report(
            "results/tables/dynamic_placement.html",
            caption="../report/dynamic_placement_table.rst",
            category="Placement",
            labels={"table": "dynamic placement"},
        ),
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
        policies=DYNAMIC_POLICIES,
    script:
        "../scripts/plot_dynamic_placement.py"


rule fit_workload:
    input:
        published=WORKLOADS.published if WORKLOADS else [],
        base=get_workload_base,
        code=script_code("fit_workload"),
    output:
        model="results/placement/workloads/{workload}/model.json",
    log:
        "logs/placement/workloads/fit-{workload}.log",
    benchmark:
        "results/bench/placement/workloads/fit-{workload}.tsv"
    wildcard_constraints:
        workload=_alternatives(WORKLOAD_NAMES),
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem(4000),
        runtime=60,
    params:
        workloads=WORKLOADS_FIT,
    script:
        "../scripts/fit_workload.py"


rule predict_workload:
    input:
        model="results/placement/workloads/{workload}/model.json",
        published=WORKLOADS.published if WORKLOADS else [],
        code=script_code("predict_workload"),
    output:
        table="results/placement/workloads/{workload}/predictions.parquet",
    log:
        "logs/placement/workloads/predict-{workload}.log",
    benchmark:
        "results/bench/placement/workloads/predict-{workload}.tsv"
    wildcard_constraints:
        workload=_alternatives(WORKLOAD_NAMES),
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem(8000),
        runtime=60,
    params:
        workloads=config["placement"].get("workloads"),
    script:
        "../scripts/predict_workload.py"


rule collect_hotness_predictions:
    input:
        tables=expand(
            "results/placement/workloads/{workload}/predictions.parquet",
            workload=WORKLOAD_NAMES,
        ),
        models=expand(
            "results/placement/workloads/{workload}/model.json",
            workload=WORKLOAD_NAMES,
        ),
        code=script_code("collect_hotness_predictions"),
    output:
        table="results/tables/hotness_predictions.parquet",
        errors="results/tables/hotness_prediction_errors.parquet",
        html=report(
            "results/tables/hotness_predictions.html",
            caption="../report/hotness_predictions_table.rst",
            category="Placement",
            labels={"table": "workload models: modelled vs published"},
        ),
    log:
        "logs/figures/hotness_predictions.log",
    conda:
        "../../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=mem(1000),
        runtime=5,
    script:
        "../scripts/collect_hotness_predictions.py"


rule plot_hotness_predictions:
    input:
        table="results/tables/hotness_predictions.parquet",
        models=expand(
            "results/placement/workloads/{workload}/model.json",
            workload=WORKLOAD_NAMES,
        ),
        code=script_code("plot_hotness_predictions"),
    output:
        **workload_figures(),
    log:
        "logs/figures/hotness_predictions-figures.log",
    conda:
        "../../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=mem(1000),
        runtime=5,
    params:
        workloads=WORKLOAD_NAMES,
    script:
        "../scripts/plot_hotness_predictions.py"


rule competition_submission:
    input:
        code=script_code("write_submission"),
    output:
        submission="results/exports/competition/submission.py",
    log:
        "logs/exports/competition_submission.log",
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem(1000),
        runtime=5,
    params:
        submission=config["placement"]["submission"],
    script:
        "../scripts/write_submission.py"


rule dynamic_grid_cell:
    input:
        model="results/placement/workloads/{workload}/model.json",
        submission="results/exports/competition/submission.py",
        code=script_code("dynamic_grid_cell"),
    output:
        cell="results/placement/grid/{workload}/ep{ep}-drift{drift}-seed{seed}.parquet",
        measured="results/bench/placement/grid/{workload}/ep{ep}-drift{drift}-seed{seed}.parquet",
    log:
        "logs/placement/grid/{workload}/ep{ep}-drift{drift}-seed{seed}.log",
    benchmark:
        "results/bench/placement/grid/{workload}/ep{ep}-drift{drift}-seed{seed}.tsv"
    wildcard_constraints:
        workload=_alternatives(WORKLOAD_NAMES),
        ep=r"\d+",
        drift=r"[0-9.]+",
        seed=r"\d+",
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem(8000),
        runtime=120,
    params:
        cell=GRID_CELL,
        policies=DYNAMIC_POLICIES,
    script:
        "../scripts/dynamic_grid_cell.py"


rule collect_dynamic_grid:
    input:
        models=expand(
            "results/placement/workloads/{workload}/model.json",
            workload=GRID.workloads if GRID else [],
        ),
        cells=expand("results/placement/grid/{cell}.parquet", cell=GRID_CELLS),
        measured=expand("results/bench/placement/grid/{cell}.parquet", cell=GRID_CELLS),
        users=expand(
            "results/placement/grid-policies/{name}/grid.parquet",
            name=list(USER_POLICIES),
        ),
        users_measured=expand(
            "results/bench/placement/grid-policies/{name}/grid.parquet",
            name=list(USER_POLICIES),
        ),
        code=script_code("collect_dynamic_grid"),
    output:
        **figure(
            "dynamic_grid_scores",
            "Placement",
            "grid: score vs DS-EPLB per cell",
            key="scores",
        ),
        **figure(
            "dynamic_grid_frontier",
            "Placement",
            "grid: PAR vs slots moved",
            key="frontier",
        ),
        table="results/tables/dynamic_grid.parquet",
        html=report(
            "results/tables/dynamic_grid.html",
            caption="../report/dynamic_grid_table.rst",
            category="Placement",
            labels={"table": "dynamic placement grid"},
        ),
        measured="results/bench/placement/dynamic_grid_measured.parquet",
    log:
        "logs/figures/dynamic_grid.log",
    conda:
        "../../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=mem(2000),
        runtime=5,
    params:
        grid=config["placement"]["grid"],
        policies=DYNAMIC_POLICIES,
        users=[(u.name, u.path, u.seconds_per_call) for u in USER_POLICIES.values()],
    script:
        "../scripts/collect_dynamic_grid.py"


rule export_placements:
    input:
        static=expand(
            "results/placement/static/{trace}-devices.parquet", trace=PLACEMENT_TRACES
        ),
        dynamic=expand(
            "results/placement/dynamic/{trace}-redeployments.parquet",
            trace=DYNAMIC_SOURCES,
        ),
        code=script_code("export_placements"),
    output:
        static=directory("results/exports/static"),
        dynamic=directory("results/exports/dynamic"),
        manifest="results/exports/manifest.parquet",
    log:
        "logs/exports/placements.log",
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem(2000),
        runtime=20,
    script:
        "../scripts/export_placements.py"


rule imported_grid:
    input:
        source=get_load_source,
        meta=get_load_meta,
        submission="results/exports/competition/submission.py",
        code=script_code("imported_grid"),
    output:
        cell="results/placement/grid/{trace}.parquet",
        measured="results/bench/placement/grid/{trace}.parquet",
    log:
        "logs/placement/grid-{trace}.log",
    benchmark:
        "results/bench/placement/grid-{trace}.tsv"
    wildcard_constraints:
        trace=_alternatives(IMPORTED_TRACES + IMPORTED_LOADS),
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem(8000),
        runtime=120,
    params:
        cell=GRID_CELL,
        eps=GRID_EPS,
        policies=DYNAMIC_POLICIES,
    script:
        "../scripts/imported_grid.py"


rule user_policy_grid:
    input:
        policy=lambda w: USER_POLICIES[w.name].path,
        models=expand(
            "results/placement/workloads/{workload}/model.json",
            workload=GRID.workloads if GRID else [],
        ),
        cells=expand("results/placement/grid/{cell}.parquet", cell=GRID_CELLS),
        measured=expand("results/bench/placement/grid/{cell}.parquet", cell=GRID_CELLS),
        code=script_code("user_policy_grid"),
    output:
        table="results/placement/grid-policies/{name}/grid.parquet",
        measured="results/bench/placement/grid-policies/{name}/grid.parquet",
    log:
        "logs/placement/grid-policies/{name}-grid.log",
    wildcard_constraints:
        name=_alternatives(list(USER_POLICIES)),
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem(8000),
        runtime=240,
    params:
        entry=lambda w: USER_POLICIES[w.name].to_config(),
        cell=GRID_CELL,
        policies=DYNAMIC_POLICIES,
        workloads=list(GRID.workloads) if GRID else [],
        cells=GRID_CELLS,
    script:
        "../scripts/user_policy_grid.py"


rule user_policy_imported:
    input:
        policy=lambda w: USER_POLICIES[w.name].path,
        sources=[load_source_path(t) for t in IMPORTED_SOURCES],
        metas=[m for t in IMPORTED_SOURCES for m in load_meta_paths(t)],
        cells=expand("results/placement/grid/{trace}.parquet", trace=IMPORTED_SOURCES),
        measured=expand(
            "results/bench/placement/grid/{trace}.parquet", trace=IMPORTED_SOURCES
        ),
        code=script_code("user_policy_grid"),
    output:
        table="results/placement/grid-policies/{name}/imported.parquet",
        measured="results/bench/placement/grid-policies/{name}/imported.parquet",
    log:
        "logs/placement/grid-policies/{name}-imported.log",
    wildcard_constraints:
        name=_alternatives(list(USER_POLICIES)),
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem(8000),
        runtime=240,
    params:
        entry=lambda w: USER_POLICIES[w.name].to_config(),
        cell=GRID_CELL,
        policies=DYNAMIC_POLICIES,
        imported=IMPORTED_SOURCES,
    script:
        "../scripts/user_policy_grid.py"


rule decide_placement:
    input:
        source=get_load_source,
        meta=get_load_meta,
        code=script_code("decide_placement"),
    output:
        table="results/placement/decision/{trace}.parquet",
        files=directory("results/exports/decision/{trace}"),
    log:
        "logs/placement/decision-{trace}.log",
    wildcard_constraints:
        trace=_alternatives(IMPORTED_SOURCES),
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem(8000),
        runtime=120,
    params:
        decision=config["placement"].get("decision"),
        cell=GRID_CELL,
        eps=GRID_EPS,
        policies=DYNAMIC_POLICIES,
        split_fraction=config["placement"]["split_fraction"],
    script:
        "../scripts/decide_placement.py"


rule decide_grid:
    input:
        models=expand(
            "results/placement/workloads/{workload}/model.json",
            workload=GRID.workloads if GRID else [],
        ),
        code=script_code("decide_placement"),
    output:
        table="results/placement/decision/grid.parquet",
    log:
        "logs/placement/decision-grid.log",
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem(8000),
        runtime=240,
    params:
        decision=config["placement"].get("decision"),
        cell=GRID_CELL,
        policies=DYNAMIC_POLICIES,
        split_fraction=config["placement"]["split_fraction"],
        workloads=list(GRID.workloads) if GRID else [],
        cells=GRID_CELLS,
    script:
        "../scripts/decide_placement.py"


rule collect_decision:
    input:
        tables=expand(
            "results/placement/decision/{trace}.parquet", trace=IMPORTED_SOURCES
        ),
        cells=["results/placement/decision/grid.parquet"] if GRID_CELLS else [],
        code=script_code("collect_decision"),
    output:
        **figure(
            "decision",
            "Placement",
            "the decision: time per candidate and budget",
            key="fig",
        ),
        table="results/tables/decision.parquet",
        html=report(
            "results/tables/decision.html",
            caption="../report/decision_table.rst",
            category="Placement",
            labels={"table": "the decision per imported load"},
        ),
    log:
        "logs/figures/decision.log",
    conda:
        "../../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=mem(2000),
        runtime=5,
    params:
        decision=config["placement"].get("decision"),
        policies=DYNAMIC_POLICIES,
        cell=GRID_CELL,
        split_fraction=config["placement"]["split_fraction"],
    script:
        "../scripts/collect_decision.py"


rule collect_imported_grid:
    input:
        cells=expand("results/placement/grid/{trace}.parquet", trace=IMPORTED_SOURCES),
        measured=expand(
            "results/bench/placement/grid/{trace}.parquet", trace=IMPORTED_SOURCES
        ),
        users=expand(
            "results/placement/grid-policies/{name}/imported.parquet",
            name=list(USER_POLICIES),
        ),
        users_measured=expand(
            "results/bench/placement/grid-policies/{name}/imported.parquet",
            name=list(USER_POLICIES),
        ),
        code=script_code("collect_imported_grid"),
    output:
        table="results/tables/imported_grid.parquet",
        html=report(
            "results/tables/imported_grid.html",
            caption="../report/imported_grid_table.rst",
            category="Placement",
            labels={"table": "imported loads: dynamic placement"},
        ),
        measured="results/bench/placement/imported_grid_measured.parquet",
    log:
        "logs/figures/imported_grid.log",
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem(1000),
        runtime=5,
    params:
        cell=GRID_CELL,
        policies=DYNAMIC_POLICIES,
        users=[(u.name, u.path, u.seconds_per_call) for u in USER_POLICIES.values()],
    script:
        "../scripts/collect_imported_grid.py"
