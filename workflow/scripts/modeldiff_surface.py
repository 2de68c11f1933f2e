from modelkin.modeldiff.stages import surface_directions
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    p = snakemake.params
    grids = dict(
        zip(
            [(kind, c) for kind in p.kinds for c in range(p.components)],
            snakemake.output.grids,
            strict=True,
        )
    )
    surface_directions(
        snakemake.input.directions, snakemake.output.table, grids, n_examples=p.n_examples
    )
