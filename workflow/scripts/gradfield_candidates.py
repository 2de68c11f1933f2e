from modelkin.signatures.gradfield import gradfield_candidates_file
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    gradfield_candidates_file(
        snakemake.input.data, snakemake.output[0], **snakemake.params.candidates
    )
