from modelkin.signatures.compute import signature_file
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    job = dict(snakemake.params.job)
    signature_file(
        job.pop("method"),
        snakemake.input.checkpoint,
        snakemake.input.probe or None,  # a method that reads no probe gets none
        snakemake.output[0],
        **job.pop("settings"),
        **job,
    )
