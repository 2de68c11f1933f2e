from modelkin.similarity import run_similarity_pair
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    run_similarity_pair(
        snakemake.params.job,
        snakemake.input.checkpoint_a,
        snakemake.input.checkpoint_b,
        snakemake.input.data,
        snakemake.output.table,
        snakemake.output.heatmap,
    )
