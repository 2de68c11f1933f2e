from modelkin.distances.plots import plot_relatedness_roc
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    plot_relatedness_roc(snakemake.input[0], snakemake.output[0], method=snakemake.wildcards.method)
