from modelkin.kinship import plot_family_trees
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    plot_family_trees(snakemake.input.edges, snakemake.input.families, snakemake.output[0])
