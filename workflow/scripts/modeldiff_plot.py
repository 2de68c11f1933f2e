from modelkin.modeldiff.stages import plot_summary
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    plot_summary(
        snakemake.output[0],
        comparison=snakemake.input.directions,
        counterfactual_csv=snakemake.input.counterfactual,
    )
