from modelkin.signatures import get_method
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    get_method(snakemake.wildcards.method).select_probe(
        snakemake.input.candidates,
        snakemake.input.signatures,
        snakemake.output[0],
        **snakemake.params.settings,
    )
