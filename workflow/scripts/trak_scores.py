from modelkin.attribution.jobs import score_feature_files
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    score_feature_files(
        snakemake.output[0],
        list(snakemake.input),
        algorithm=snakemake.wildcards.algorithm,
        out_to_loss=snakemake.params.out_to_loss,
        memory_budget_mb=snakemake.params.memory_budget_mb,
    )
