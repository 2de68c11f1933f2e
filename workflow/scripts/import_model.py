from modelkin.questions.imports import import_model
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    import_model(snakemake.input.weights, snakemake.output[0], **snakemake.params.job)
