from modelkin.modeldiff.stages import compare_score_files
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    compare_score_files(
        snakemake.output.directions,
        snakemake.output.table,
        scores_a=snakemake.input.scores_a,
        scores_b=snakemake.input.scores_b,
        num_components=snakemake.params.num_components,
        normalize_rows=snakemake.params.normalize_rows,
    )
