# Settings and input functions of the ModelDiff stage (modeldiff.smk); no rules here.
# What the modeldiff section plans (roles, seeds, files, job settings, config checks) is
# modelkin.modeldiff.plan.ModelDiffPlan: torch-free and unit-tested (tests/test_modeldiff_plan.py).

from modelkin.modeldiff.plan import KIND_SLUGS, ModelDiffPlan

MD_PLAN = ModelDiffPlan.from_config(config)  # raises ConfigError before any job
MD = MD_PLAN.section
MD_ROLES = MD_PLAN.roles
MD_DIR = MD_PLAN.directory
MD_KINDS = KIND_SLUGS
MD_LDS = MD_PLAN.lds_summary
MD_OUTPUTS = MD_PLAN.outputs


def trak_features_job(wildcards):
    return canonical(
        MD_PLAN.trak_features_job(int(wildcards.init_seed), int(wildcards.data_seed))
    )


def trak_features_external_job(wildcards):
    return canonical(MD_PLAN.external_features_job(wildcards.side, wildcards.name))


def lds_subset_job(wildcards):
    return canonical(MD_PLAN.lds_subset_job(int(wildcards.subset)))


def lds_subset_files(wildcards):
    return MD_PLAN.lds_subsets(wildcards.dataset, wildcards.arch, wildcards.algorithm)
