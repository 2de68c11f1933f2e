from modelkin.data import prepare_dataset
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    prepare_dataset(
        snakemake.wildcards.dataset, snakemake.output[0], data_root=snakemake.params.data_root
    )
