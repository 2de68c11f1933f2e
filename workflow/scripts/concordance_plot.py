from modelkin.concordance import plot_concordance
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    plot_concordance(snakemake.input[0], snakemake.output[0], snakemake.params.methods)
