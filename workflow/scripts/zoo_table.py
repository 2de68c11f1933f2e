from modelkin.evaluate import zoo_table
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    zoo_table(snakemake.input.checkpoints, snakemake.input.evaluations, snakemake.output[0])
