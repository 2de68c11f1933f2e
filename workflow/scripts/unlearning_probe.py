from modelkin.unlearning import unlearning_probe_file
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    unlearning_probe_file(
        snakemake.input.data,
        snakemake.output[0],
        method=snakemake.wildcards.method,
        **snakemake.params.settings,
    )
