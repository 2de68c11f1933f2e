from modelkin.attribution.lds import lds_from_files
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    lds_from_files(
        snakemake.output.summary,
        snakemake.output.table,
        scores_file=snakemake.input.scores,
        subset_files=snakemake.input.subsets,
    )
