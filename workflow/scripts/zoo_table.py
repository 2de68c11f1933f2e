from modelkin.workflow import snakemake_job
from modelkin.zoo import zoo_table

with snakemake_job(snakemake):
    zoo_table(snakemake.input.evaluations, snakemake.output[0])
