from modelkin.distances.tables import distance_stage
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    job = dict(snakemake.params.job)
    distance_stage(
        snakemake.wildcards.method,
        job.pop("models"),
        snakemake.input.signatures,
        snakemake.output.table,
        snakemake.output.reference,
        **job,
    )
