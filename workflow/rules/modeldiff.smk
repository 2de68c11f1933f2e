# ModelDiff with TRAK (docs/modeldiff.md): the checkpoints of algorithms A and B (ordinary
# training.algorithms entries, trained by the `train` rule; or the user's own, modeldiff.models_a
# and models_b, imported by `import_model`, whose LDS is skipped) -> TRAK features per checkpoint ->
# TRAK scores per algorithm -> distinguishing directions (A-minus-B, B-minus-A) -> surfaced examples,
# counterfactual, LDS -> summary. Target: `snakemake modeldiff`.


include: "modeldiff_common.smk"


rule trak_features:
    input:
        checkpoint=f"{R}/models/{{dataset}}/{{arch}}/{{algorithm}}/i{{init_seed}}-d{{data_seed}}.safetensors",
        data=f"{R}/data/{{dataset}}.safetensors",
    output:
        f"{R}/modeldiff/trak/{{dataset}}/{{arch}}/{{algorithm}}/i{{init_seed}}-d{{data_seed}}.h5",
    log:
        f"{R}/logs/trak_features/{{dataset}}/{{arch}}/{{algorithm}}/i{{init_seed}}-d{{data_seed}}.log",
    conda:
        ENV
    threads: 2
    resources:
        gpu=GPU,
        mem_mb=6000,
        runtime=60,
    params:
        job=trak_features_job,
    script:
        "../scripts/trak_features.py"


rule trak_features_external:
    input:
        checkpoint=f"{R}/models/external/{{name}}.safetensors",
        data=f"{R}/data/{{dataset}}.safetensors",
    output:
        f"{R}/modeldiff/trak-external/{{dataset}}/{{side}}/{{name}}.h5",
    log:
        f"{R}/logs/trak_features/external/{{dataset}}/{{side}}/{{name}}.log",
    wildcard_constraints:
        side="models_a|models_b",
    conda:
        ENV
    threads: 2
    resources:
        gpu=GPU,
        mem_mb=6000,
        runtime=60,
    params:
        job=trak_features_external_job,
    script:
        "../scripts/trak_features.py"


rule trak_scores:
    input:
        lambda wc: MD_PLAN.features(wc.algorithm),
    output:
        f"{R}/modeldiff/scores/{{dataset}}/{{arch}}/{{algorithm}}.h5",
    log:
        f"{R}/logs/trak_scores/{{dataset}}/{{arch}}/{{algorithm}}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        out_to_loss=MD["trak"]["out_to_loss"],
        memory_budget_mb=config["memory_budget_mb"],
    script:
        "../scripts/trak_scores.py"


rule modeldiff_directions:
    input:
        scores_a=MD_PLAN.scores(MD_ROLES["A"]),
        scores_b=MD_PLAN.scores(MD_ROLES["B"]),
    output:
        directions=f"{MD_DIR}/directions.h5",
        table=f"{MD_DIR}/directions.csv",
    log:
        f"{R}/logs/modeldiff/{MD['dataset']}-{MD['arch']}-directions.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        num_components=MD["components"],
        normalize_rows=MD["normalize_rows"],
    script:
        "../scripts/modeldiff_directions.py"


rule modeldiff_surface:
    input:
        directions=f"{MD_DIR}/directions.h5",
        data=f"{R}/data/{MD['dataset']}.safetensors",
    output:
        table=f"{MD_DIR}/surfaced.csv",
        grids=MD_PLAN.grids,
    log:
        f"{R}/logs/modeldiff/{MD['dataset']}-{MD['arch']}-surface.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        n_examples=MD["surfacing"]["n_examples"],
        kinds=MD_KINDS,
        components=MD["components"],
    script:
        "../scripts/modeldiff_surface.py"


rule modeldiff_counterfactual:
    input:
        directions=f"{MD_DIR}/directions.h5",
        data=f"{R}/data/{MD['dataset']}.safetensors",
        checkpoints_a=MD_PLAN.checkpoints(MD_ROLES["A"]),
        checkpoints_b=MD_PLAN.checkpoints(MD_ROLES["B"]),
    output:
        table=f"{MD_DIR}/counterfactual.csv",
        summary=f"{MD_DIR}/counterfactual_summary.csv",
    log:
        f"{R}/logs/modeldiff/{MD['dataset']}-{MD['arch']}-counterfactual.log",
    conda:
        ENV
    threads: 2
    resources:
        gpu=GPU,
        mem_mb=4000,
        runtime=20,
    params:
        counterfactual=canonical(MD["counterfactual"]),
        device=config["device"],
    script:
        "../scripts/modeldiff_counterfactual.py"


rule lds_subset:
    input:
        reference=lambda wc: MD_PLAN.checkpoints(wc.algorithm)[0],
        data=f"{R}/data/{{dataset}}.safetensors",
    output:
        f"{R}/modeldiff/lds/{{dataset}}/{{arch}}/{{algorithm}}/subset{{subset}}.h5",
    log:
        f"{R}/logs/lds_subset/{{dataset}}/{{arch}}/{{algorithm}}/subset{{subset}}.log",
    wildcard_constraints:
        subset=r"\d+",
    conda:
        ENV
    threads: 2
    resources:
        gpu=GPU,
        mem_mb=4000,
        runtime=60,
    params:
        job=lds_subset_job,
    script:
        "../scripts/lds_subset.py"


rule lds:
    input:
        scores=f"{R}/modeldiff/scores/{{dataset}}/{{arch}}/{{algorithm}}.h5",
        subsets=lds_subset_files,
    output:
        summary=f"{R}/modeldiff/lds/{{dataset}}/{{arch}}/{{algorithm}}/lds.json",
        table=f"{R}/modeldiff/lds/{{dataset}}/{{arch}}/{{algorithm}}/lds.csv",
    log:
        f"{R}/logs/lds/{{dataset}}/{{arch}}/{{algorithm}}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    script:
        "../scripts/lds.py"


rule modeldiff_summary:
    input:
        directions=f"{MD_DIR}/directions.h5",
        counterfactual=f"{MD_DIR}/counterfactual_summary.csv",
        lds=[MD_LDS] if MD_LDS else [],
    output:
        f"{MD_DIR}/summary.json",
    log:
        f"{R}/logs/modeldiff/{MD['dataset']}-{MD['arch']}-summary.log",
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        precision_k=MD["precision_k"],
        skipped=MD_PLAN.skipped,
    script:
        "../scripts/modeldiff_summary.py"


rule modeldiff_plot:
    input:
        directions=f"{MD_DIR}/directions.h5",
        counterfactual=f"{MD_DIR}/counterfactual.csv",
    output:
        report(
            f"{MD_DIR}/summary.png",
            caption="../report/modeldiff.rst",
            category="ModelDiff",
        ),
    log:
        f"{R}/logs/modeldiff/{MD['dataset']}-{MD['arch']}-plot.log",
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/modeldiff_plot.py"


rule modeldiff:
    input:
        MD_OUTPUTS,


if MD["run_by_default"]:
    TARGETS.extend(MD_OUTPUTS)
    # What the summary reads: deleting one rebuilds it.
    TARGETS.extend([f"{MD_DIR}/directions.h5", f"{MD_DIR}/counterfactual_summary.csv"])
    TARGETS.extend([MD_LDS] if MD_LDS else [])
