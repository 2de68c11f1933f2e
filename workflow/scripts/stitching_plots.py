from modelkin.stitching.report import plot_summary
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    plot_summary(
        snakemake.input[0], snakemake.output.relative, snakemake.output.cka, snakemake.output.robust
    )
