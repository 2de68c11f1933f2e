# Family trees (docs/lineage.md): an edge wherever the distance tables' combined p-value says
# related, families (connected components), a directed tree per family (Edmonds) with each edge's
# direction evidence, and scores against the true lineage the workflow's models record.

from modelkin.kinship.plan import lineage_plan

LINEAGE = lineage_plan(config, MODELS)
LINEAGE_OUT = LINEAGE.outputs(R) if LINEAGE else {}


rule lineage:
    input:
        tables=lambda wc: [f"{R}/distances/{m}.csv" for m in LINEAGE.methods],
        checkpoints=lambda wc: [checkpoint_of(m) for m in DISTANCE_MODELS],
    output:
        edges=report(
            f"{R}/lineage/edges.csv",
            caption="../report/lineage_edges.rst",
            category="Family trees",
        ),
        families=report(
            f"{R}/lineage/families.csv",
            caption="../report/lineage_families.rst",
            category="Family trees",
        ),
        scores=report(
            f"{R}/lineage/scores.csv",
            caption="../report/lineage_scores.rst",
            category="Family trees",
        ),
    log:
        f"{R}/logs/lineage/lineage.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        methods=list(LINEAGE.methods) if LINEAGE else [],
        models=DISTANCE_MODELS,
        alpha=LINEAGE.alpha if LINEAGE else None,
        settings=canonical(LINEAGE.settings) if LINEAGE else {},
    script:
        "../scripts/lineage.py"


rule lineage_trees:
    input:
        edges=f"{R}/lineage/edges.csv",
        families=f"{R}/lineage/families.csv",
    output:
        report(
            f"{R}/lineage/trees.png",
            caption="../report/lineage_trees.rst",
            category="Family trees",
        ),
    log:
        f"{R}/logs/lineage/trees.log",
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/lineage_trees.py"


if LINEAGE:
    TARGETS.extend(LINEAGE_OUT.values())
