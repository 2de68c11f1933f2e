# Model stitching (docs/stitching.md): Dr. Frankenstein, robust and cross-task stitching. One result per
# run (experiment, model pair, layer pair), a summary table and plots. Task donors for cross-task
# stitching (a transformed copy of a data set, e.g. inverted digits) are trained here, like the zoo.


include: "stitching_common.smk"


rule stitch_task_donor:
    input:
        data=lambda wc: f"{R}/data/{task_of(wc.task, config).dataset}.safetensors",
    output:
        f"{R}/stitching/donors/{{task}}/{{arch}}/{{algorithm}}/i{{init_seed}}-d{{data_seed}}.safetensors",
    log:
        f"{R}/logs/stitch_task_donor/{{task}}/{{arch}}/{{algorithm}}/i{{init_seed}}-d{{data_seed}}.log",
    wildcard_constraints:
        task="|".join(config["stitching"]["tasks"]) or "(?!)",
    conda:
        ENV
    threads: 2
    resources:
        gpu=GPU,
        mem_mb=4000,
        runtime=120,
    params:
        job=stitch_donor_job,
    script:
        "../scripts/stitch_task_donor.py"


rule stitch:
    input:
        unpack(stitch_inputs),
    output:
        result=f"{R}/stitching/runs/{{experiment}}/{{pair}}/{{layers}}.json",
        tensors=f"{R}/stitching/runs/{{experiment}}/{{pair}}/{{layers}}.safetensors",
    log:
        f"{R}/logs/stitch/{{experiment}}/{{pair}}/{{layers}}.log",
    wildcard_constraints:
        experiment="[^/]+",
        pair="[^/]+",
        layers="[^/]+",
    conda:
        ENV
    threads: 1
    resources:
        gpu=GPU,
        mem_mb=4000,
        runtime=60,
    params:
        job=stitch_job,
    script:
        "../scripts/stitch.py"


rule stitching_summary:
    input:
        STITCH_RESULTS,
    output:
        report(
            f"{R}/stitching/summary.csv",
            caption="../report/stitching_summary.rst",
            category="Stitching",
        ),
    log:
        f"{R}/logs/stitching_summary.log",
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/stitching_summary.py"


rule stitching_plots:
    input:
        f"{R}/stitching/summary.csv",
    output:
        relative=report(
            f"{R}/stitching/plots/relative_accuracy.png",
            caption="../report/stitching_relative_accuracy.rst",
            category="Stitching",
        ),
        cka=report(
            f"{R}/stitching/plots/cka_vs_accuracy.png",
            caption="../report/stitching_cka_vs_accuracy.rst",
            category="Stitching",
        ),
        robust=report(
            f"{R}/stitching/plots/robust_accuracy.png",
            caption="../report/stitching_robust_accuracy.rst",
            category="Stitching",
        ),
    log:
        f"{R}/logs/stitching_plots.log",
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/stitching_plots.py"


if STITCH_RUNS:
    # Each run's files too: deleting one run's result rebuilds it, then the summary.
    TARGETS.extend(STITCH_RESULTS)
    TARGETS.extend(
        path.removesuffix(".json") + ".safetensors" for path in STITCH_RESULTS
    )
    TARGETS.extend(
        [
            f"{R}/stitching/summary.csv",
            f"{R}/stitching/plots/relative_accuracy.png",
            f"{R}/stitching/plots/cka_vs_accuracy.png",
            f"{R}/stitching/plots/robust_accuracy.png",
        ]
    )
