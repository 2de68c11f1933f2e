from modelkin.distances.ksweep import k_sweep
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    p = snakemake.params
    k_sweep(
        snakemake.wildcards.method,
        p.models,
        snakemake.input.signatures,
        p.ks,
        snakemake.output.table,
        snakemake.output.plot,
        calibration=p.calibration,
    )
