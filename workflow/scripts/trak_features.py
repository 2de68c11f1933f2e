from modelkin.attribution.jobs import featurize_checkpoint_file
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    featurize_checkpoint_file(
        snakemake.output[0],
        checkpoint=snakemake.input.checkpoint,
        prepared=snakemake.input.data,
        **snakemake.params.job,
    )
