# maskdiff: reproduce MDPO (Answer Backslide, RCR) and the time-agnostic MDM paper (FHS, fp64
# sampling) end to end. This file is the table of contents; every stage lives in workflow/rules/.
#   snakemake --cores 2                                      # the `local` preset (default)
#   snakemake --cores 2 --configfile config/presets/smoke.yaml
from snakemake.utils import min_version

min_version("9.0")


# The embedded default, only when no --configfile is given: a preset given on the command line stands
# alone (its keys over the schema defaults), as maskdiff.config.load_config reads it, instead of being
# merged over local.yaml (Snakemake's default), which let local-only keys leak into every preset.
if not workflow.overwrite_configfiles:

    configfile: "config/presets/local.yaml"



include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/base_model.smk"
include: "workflow/rules/rollouts.smk"
include: "workflow/rules/mining.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/precision.smk"
include: "workflow/rules/tuning.smk"


onstart:
    print(f"maskdiff: preset '{PRESET}' -> {DATA}/, {RESULTS}/")


onsuccess:
    print(f"maskdiff: done; report at {LAYOUT.result('report.html')}, tables {LAYOUT.result('summary.csv')} and sweep.csv")


onerror:
    print(f"maskdiff: a job failed; see the logs under {LAYOUT.logs}/")
    # A job SLURM killed for its time or memory limit: which rule, which resource, how to raise it.
    for line in cluster_failure_report(".", RUN_STARTED):
        print(f"maskdiff: {line}")


rule all:
    default_target: True
    input:
        rules.aggregate_sweep.output.summary,
        rules.report.output.html,
        rules.figures.output.figures,
        PRECISION_OUTPUTS,
