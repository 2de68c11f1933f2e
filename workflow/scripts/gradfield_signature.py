from modelkin.signatures.gradfield import gradfield_signature_file
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    gradfield_signature_file(
        snakemake.input.checkpoint,
        snakemake.input.probe,
        snakemake.output[0],
        **snakemake.params.job,
    )
