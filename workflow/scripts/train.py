from modelkin.train import train_checkpoint
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    train_checkpoint(
        snakemake.output.checkpoint, prepared=snakemake.input.data, **snakemake.params.job
    )
