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
        # the run's config files are not in it: a renamed config file would rerun the summary
        command=lambda wildcards: "snakemake --cores all {target}",
    script:
        "../scripts/collect_summary.py"
