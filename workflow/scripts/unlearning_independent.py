from modelkin.unlearning import independent_files
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    independent_files(
        snakemake.output.table,
        snakemake.output.record,
        parent=snakemake.input.parent,
        prepared=snakemake.input.data,
        checkpoints=list(snakemake.input.checkpoints),
        **snakemake.params.job,
    )
