# The report's summary page: each stage's headline result from its collected table, next to its baseline.


rule collect_summary:
    input:
        **summary_tables(),
        code=script_code("collect_summary"),
    output:
        table="results/tables/summary.parquet",
        html=report(
            "results/tables/summary.html",
            caption="../report/summary_table.rst",
            category="Summary",
            labels={"table": "headline results"},
        ),
    log:
        "logs/summary.log",
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem(1000),
        runtime=5,
    params:
        tables=list(summary_tables()),
        command=lambda wildcards: regenerate_command(),  # {target} is not a wildcard
    script:
        "../scripts/collect_summary.py"
