from modelkin.concordance import concordance_table
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    p, out = snakemake.params, snakemake.output
    concordance_table(
        snakemake.input.pairs,
        dict(zip(p.distance_methods, snakemake.input.distances, strict=True)),
        p.methods,
        pairs_csv=out.pairs,
        correlations_csv=out.correlations,
        relations_csv=out.relations,
        distance_metric=p.distance_metric,
        min_group_pairs=p.min_group_pairs,
        expected_pairs=p.expected_pairs,
    )
