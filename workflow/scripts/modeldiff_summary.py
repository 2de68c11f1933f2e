from modelkin.modeldiff.stages import format_summary, summarise_files
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    lds = snakemake.input.lds[0] if snakemake.input.lds else None
    summary = summarise_files(
        snakemake.output[0],
        comparison=snakemake.input.directions,
        counterfactual_summary=snakemake.input.counterfactual,
        lds=lds,
        precision_k=snakemake.params.precision_k,
        skipped=snakemake.params.skipped,
    )
    print(format_summary(summary))
