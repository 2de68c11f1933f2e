from modelkin.signatures import get_method
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    get_method(snakemake.wildcards.method).make_probe(
        snakemake.input.data, snakemake.output[0], **snakemake.params.settings
    )
