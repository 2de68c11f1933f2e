from modelkin.questions.plots import plot_derivation
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    plot_derivation(snakemake.input[0], snakemake.output[0])
