from modelkin.stitching.report import summary_table
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    summary_table(snakemake.input, snakemake.output[0])
