from modelkin.similarity import summarise_similarity
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    summarise_similarity(snakemake.input, snakemake.output[0])
