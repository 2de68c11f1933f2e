from modelkin.evaluate import plot_zoo
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    plot_zoo(snakemake.input[0], snakemake.output[0])
