# modelkin: how functionally alike are these neural networks, and is one derived from another?
#
#   snakemake --cores 2                      # the default config.yaml, end to end
#   snakemake --cores 2 --configfile tests/config/tiny.yaml
#   snakemake --profile profiles/slurm       # on a SLURM cluster
#
# Every rule is thin: it calls one function of src/modelkin through workflow/scripts/<rule>.py.


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/signatures.smk"
include: "workflow/rules/derive.smk"
include: "workflow/rules/distances.smk"
include: "workflow/rules/similarity.smk"
include: "workflow/rules/stitching.smk"
include: "workflow/rules/modeldiff.smk"
include: "workflow/rules/concordance.smk"


rule all:
    default_target: True
    input:
        all_targets,
