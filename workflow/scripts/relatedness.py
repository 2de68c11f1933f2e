from modelkin.distances.relatedness import relatedness_table
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    relatedness_table(
        snakemake.input[0],
        snakemake.output[0],
        method=snakemake.wildcards.method,
        alpha=snakemake.params.alpha,
        reference=snakemake.input.reference,
    )
