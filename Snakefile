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


# The tables and figures (collect_* and plot_* rules) run where Snakemake itself runs, never as cluster jobs: each
# reads small tables (a trace's metadata at most) for a few seconds, less than a cluster job's queue wait and
# its two Snakemake start-ups. (`localrules:` lists rules by name; this is the call it makes, for every such
# rule the includes define.)
workflow.localrules(
    *(r.name for r in workflow.rules if r.name.startswith(("collect_", "plot_")))
)
