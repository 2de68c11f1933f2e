from modelkin.derive import evaluate_derived_checkpoint
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    evaluate_derived_checkpoint(
        snakemake.input.checkpoint, snakemake.input.data, snakemake.output[0], device=snakemake.params.device, **snakemake.params.evaluation
    )
