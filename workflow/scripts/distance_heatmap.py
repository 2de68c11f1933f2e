from modelkin.distances.plots import plot_distance_heatmap
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    plot_distance_heatmap(
        snakemake.input[0],
        snakemake.output[0],
        method=snakemake.wildcards.method,
        alpha=snakemake.params.alpha,
    )
