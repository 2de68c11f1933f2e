from modelkin.stitching.run import stitch_models
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    model1, model2 = snakemake.input.checkpoints
    stitch_models(
        model1,
        model2,
        output=snakemake.output.result,
        data=list(snakemake.input.data),
        **snakemake.params.job,
    )
