from modelkin.unlearning import trajectory_files
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    trajectory_files(
        snakemake.output.table,
        snakemake.output.record,
        parent=snakemake.input.parent,
        prepared=snakemake.input.data,
        **snakemake.params.job,
    )
