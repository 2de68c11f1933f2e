from modelkin.kinship import lineage_stage
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    lineage_stage(
        dict(zip(snakemake.params.methods, snakemake.input.tables, strict=True)),
        dict(zip(snakemake.params.models, snakemake.input.checkpoints, strict=True)),
        snakemake.output.edges,
        snakemake.output.families,
        snakemake.output.scores,
        settings=snakemake.params.settings,
        alpha=snakemake.params.alpha,
    )
