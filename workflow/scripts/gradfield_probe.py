from modelkin.signatures.gradfield import select_reference_points
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    select_reference_points(
        snakemake.input.candidates,
        snakemake.input.signatures,
        snakemake.params.k,
        snakemake.output[0],
    )
