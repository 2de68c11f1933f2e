# modelkin: how functionally alike are these neural networks, and is one derived from another?
#
#   snakemake --cores 2                      # the default config.yaml, end to end
#   snakemake --cores 2 --configfile tests/config/tiny.yaml   # that file alone
#   snakemake --profile profiles/slurm       # on a SLURM cluster
#
# Every rule is thin: it calls one function of src/modelkin through workflow/scripts/<rule>.py.
import sys

from modelkin.config import read_config_file
from modelkin.errors import ModelkinError
from modelkin.workflow import drop_local_job_rate_limit

# `--configfile FILE` replaces config.yaml instead of being merged over it (Snakemake's default), so
# that a configuration means what its file says: keys it omits take the schema's defaults, not
# config.yaml's values. config.yaml is read first by modelkin's loader, whose errors name the line.
if not workflow.overwrite_configfiles:
    try:
        read_config_file("config.yaml")
    except ModelkinError as err:
        sys.exit(f"modelkin: {err}")

    configfile: "config.yaml"


report: "workflow/report/workflow.rst"


# Local runs only: Snakemake's job-rate limit re-arms timers that, with many jobs waiting for
# cores, keep its scheduler busy (modelkin.workflow.drop_local_job_rate_limit).
onstart:
    drop_local_job_rate_limit(workflow)


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/signatures.smk"
include: "workflow/rules/derive.smk"
include: "workflow/rules/distances.smk"
include: "workflow/rules/lineage.smk"
include: "workflow/rules/similarity.smk"
include: "workflow/rules/stitching.smk"
include: "workflow/rules/modeldiff.smk"
include: "workflow/rules/concordance.smk"
include: "workflow/rules/unlearning.smk"
include: "workflow/rules/questions.smk"


rule all:
    default_target: True
    input:
        all_targets,
