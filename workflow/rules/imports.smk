# Users' own serving-engine dumps (config `imports:`): token-level ones become traces, per-iteration counts
# become hotness sources. The files an import reads are its inputs, so a changed file reruns its dependents.


rule import_trace:
    input:
        files=get_import_files,
        code=script_code("import_trace"),
    output:
        "results/imported/{name}/trace.parquet",
    log:
        "logs/imports/{name}.log",
    wildcard_constraints:
        name=_alternatives([s.name for s in IMPORTS.values() if s.kind == "trace"]),
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem(4000),
        runtime=30,
    params:
        entry=get_import_entry,
        seed=config["seed"],
    script:
        "../scripts/import_trace.py"


rule import_hotness:
    input:
        files=get_import_files,
        code=script_code("import_hotness"),
    output:
        hot="results/imported/{name}/hotness.npy",
        meta="results/imported/{name}/meta.json",
    log:
        "logs/imports/{name}.log",
    wildcard_constraints:
        name=_alternatives([s.name for s in IMPORTS.values() if s.kind == "hotness"]),
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem(4000),
        runtime=30,
    params:
        entry=get_import_entry,
    script:
        "../scripts/import_hotness.py"
