# Distances between signatures (docs/model-distance.md): every pair of the compared models, with
# its relation, raw and reference-normalised distances; heatmaps; ROC AUC and curves per derivation kind.

# Which models: modelkin.distances.plan.

from modelkin.distances.plan import distance_job, distance_models, distance_signatures

DISTANCE_MODELS = distance_models(config, MODELS)


rule distance_table:
    input:
        signatures=lambda wc: distance_signatures(config, MODELS, wc.method),
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
        job=lambda wc: canonical(distance_job(config, MODELS, wc.method)),
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
    params:
        alpha=config["distances"]["calibration"]["alpha"],
    script:
        "../scripts/distance_heatmap.py"


rule relatedness:
    input:
        f"{R}/distances/{{method}}.csv",
        reference=f"{R}/distances/{{method}}_reference.json",
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
    params:
        alpha=config["distances"]["calibration"]["alpha"],
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


rule k_sweep:
    input:
        signatures=lambda wc: [signature_file(wc.method, m) for m in DISTANCE_MODELS],
    output:
        table=f"{R}/relatedness/{{method}}_k_sweep.csv",
        plot=report(
            f"{R}/relatedness/{{method}}_k_sweep.png",
            caption="../report/k_sweep.rst",
            category="Distances",
        ),
    log:
        f"{R}/logs/k_sweep/{{method}}.log",
    wildcard_constraints:
        method="|".join(SELECTING) or "(?!)",
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        models=DISTANCE_MODELS,
        ks=lambda wc: config[wc.method]["k_sweep"],
        calibration=canonical(config["distances"]["calibration"]),
    script:
        "../scripts/k_sweep.py"


for _method in config["distances"]["methods"]:
    if _method in SELECTING:
        TARGETS.extend(
            [
                f"{R}/relatedness/{_method}_k_sweep.csv",
                f"{R}/relatedness/{_method}_k_sweep.png",
            ]
        )
    # The signatures the tables read: deleting one rebuilds it, then the table.
    TARGETS.extend(distance_signatures(config, MODELS, _method))
    TARGETS.extend(
        [
            f"{R}/distances/{_method}.csv",
            f"{R}/distances/{_method}.png",
            f"{R}/relatedness/{_method}.csv",
            f"{R}/relatedness/{_method}.png",
        ]
    )
