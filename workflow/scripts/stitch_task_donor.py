from modelkin.stitching.tasks import train_task_donor
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    train_task_donor(snakemake.output[0], prepared=snakemake.input.data, **snakemake.params.job)
