from modelkin.signatures.zest import zest_signature_file
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    zest_signature_file(
        snakemake.input.checkpoint,
        snakemake.input.probe,
        snakemake.output[0],
        device=snakemake.params.device,
        chunk_size=snakemake.params.chunk_size,
    )
