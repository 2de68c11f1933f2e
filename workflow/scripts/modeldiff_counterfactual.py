from modelkin.modeldiff.stages import counterfactual_files
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    counterfactual_files(
        snakemake.output.table,
        snakemake.output.summary,
        comparison=snakemake.input.directions,
        checkpoints_a=snakemake.input.checkpoints_a,
        checkpoints_b=snakemake.input.checkpoints_b,
        **snakemake.params,
    )
