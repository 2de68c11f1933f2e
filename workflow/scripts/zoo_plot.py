from modelkin.workflow import snakemake_job
from modelkin.zoo import plot_zoo

with snakemake_job(snakemake):
    plot_zoo(snakemake.input[0], snakemake.output[0])
