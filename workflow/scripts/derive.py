from modelkin.derive.run import derive_checkpoint
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    derive_checkpoint(
        snakemake.output[0],
        parent=snakemake.input.parent,
        prepared=snakemake.input.data,
        **snakemake.params.job,
    )
