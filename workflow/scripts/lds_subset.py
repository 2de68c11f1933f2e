from modelkin.attribution.lds import train_subset_file
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    train_subset_file(
        snakemake.output[0],
        prepared=snakemake.input.data,
        reference_checkpoint=snakemake.input.reference,
        **snakemake.params.job,
    )
