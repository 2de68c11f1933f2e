from modelkin.signatures.zest import zest_probe_file
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    zest_probe_file(snakemake.input.data, snakemake.output[0], **snakemake.params.probe)
