# Distances between signatures (docs/model-distance.md): every pair of the compared models, with
# its relation, raw and reference-normalised distances; heatmaps; ROC AUC and curves per derivation kind.

# Which models: modelkin.distances.plan.

from modelkin.distances.plan import distance_job, distance_models

DISTANCE_MODELS = distance_models(config, MODELS)


rule distance_table:
    input:
        signatures=lambda wc: [signature_file(wc.method, m) for m in DISTANCE_MODELS],
    output:
        table=f"{R}/distances/{{method}}.csv",
        reference=f"{R}/distances/{{method}}_reference.json",
    log:
        f"{R}/logs/distance_table/{{method}}.log",
    wildcard_constraints:
        method="|".join(METHODS),
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        job=canonical(distance_job(config, MODELS)),
    script:
        "../scripts/distance_table.py"


rule distance_heatmap:
    input:
        f"{R}/distances/{{method}}.csv",
    output:
        report(
            f"{R}/distances/{{method}}.png",
            caption="../report/distance_heatmap.rst",
            category="Distances",
        ),
    log:
        f"{R}/logs/distance_heatmap/{{method}}.log",
    wildcard_constraints:
        method="|".join(METHODS),
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/distance_heatmap.py"


rule relatedness:
    input:
        f"{R}/distances/{{method}}.csv",
    output:
        report(
            f"{R}/relatedness/{{method}}.csv",
            caption="../report/relatedness.rst",
            category="Distances",
        ),
    log:
        f"{R}/logs/relatedness/{{method}}.log",
    wildcard_constraints:
        method="|".join(METHODS),
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/relatedness.py"


rule relatedness_roc:
    input:
        f"{R}/distances/{{method}}.csv",
    output:
        report(
            f"{R}/relatedness/{{method}}.png",
            caption="../report/relatedness_roc.rst",
            category="Distances",
        ),
    log:
        f"{R}/logs/relatedness_roc/{{method}}.log",
    wildcard_constraints:
        method="|".join(METHODS),
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/relatedness_roc.py"


for _method in config["distances"]["methods"]:
    # The signatures the tables read: deleting one rebuilds it, then the table.
    TARGETS.extend(signature_file(_method, m) for m in DISTANCE_MODELS)
    TARGETS.extend(
        [
            f"{R}/distances/{_method}.csv",
            f"{R}/distances/{_method}.png",
            f"{R}/relatedness/{_method}.csv",
            f"{R}/relatedness/{_method}.png",
        ]
    )
