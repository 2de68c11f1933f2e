from modelkin.concordance import concordance_pairs
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    job = dict(snakemake.params.job)
    checkpoints = dict(zip(job.pop("models"), snakemake.input.checkpoints, strict=True))
    concordance_pairs(checkpoints, snakemake.input.data, snakemake.output[0], **job)
