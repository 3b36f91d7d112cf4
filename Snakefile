from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/validation.smk"
include: "workflow/rules/inputs.smk"
include: "workflow/rules/targets.smk"
include: "workflow/rules/synthetic.smk"
include: "workflow/rules/capture.smk"
include: "workflow/rules/imports.smk"
include: "workflow/rules/stats.smk"
include: "workflow/rules/coactivation.smk"
include: "workflow/rules/placement.smk"
include: "workflow/rules/kernels.smk"
include: "workflow/rules/routing.smk"
include: "workflow/rules/summary.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
