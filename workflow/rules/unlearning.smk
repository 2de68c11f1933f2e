# Unlearning verification (docs/model-distance.md, "Unlearning verification"): the original model
# unlearned per method (relabel, ascent: approximate; retrain: exact), each epoch's model measured
# against the original in memory (signature distances, forget/retain accuracy); independent zoo
# models measured the same way; one table and one figure. Plan and paths: modelkin.unlearning.plan.

from modelkin.unlearning import INDEPENDENT, unlearning_plan

UNLEARNING = unlearning_plan(config, MODELS)
UL_DIR = f"{R}/unlearning"
UL_METHODS = list(UNLEARNING.methods) if UNLEARNING else []
UL_PROBES = list(UNLEARNING.probe_settings) if UNLEARNING else []


rule unlearning_probe:
    input:
        data=lambda wc: f"{R}/data/{UNLEARNING.dataset}.safetensors",
    output:
        f"{UL_DIR}/probes/{{method}}.h5",
    log:
        f"{R}/logs/unlearning/probe-{{method}}.log",
    wildcard_constraints:
        method="|".join(UL_PROBES) or "(?!)",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        settings=lambda wc: canonical(UNLEARNING.probe_settings[wc.method]),
    script:
        "../scripts/unlearning_probe.py"


rule unlearning_trajectory:
    input:
        parent=lambda wc: checkpoint_of(UNLEARNING.parent),
        data=lambda wc: f"{R}/data/{UNLEARNING.dataset}.safetensors",
        probes=lambda wc: list(UNLEARNING.probe_files.values()),
    output:
        table=f"{UL_DIR}/{{unlearning}}.csv",
        record=f"{UL_DIR}/{{unlearning}}.json",
    log:
        f"{R}/logs/unlearning/{{unlearning}}.log",
    wildcard_constraints:
        unlearning="|".join(UL_METHODS) or "(?!)",
    conda:
        ENV
    threads: 2
    resources:
        gpu=GPU,
        mem_mb=4000,
        runtime=60,
    params:
        job=lambda wc: canonical(UNLEARNING.trajectory_job(wc.unlearning)),
    script:
        "../scripts/unlearning_trajectory.py"


rule unlearning_independent:
    input:
        parent=lambda wc: checkpoint_of(UNLEARNING.parent),
        data=lambda wc: f"{R}/data/{UNLEARNING.dataset}.safetensors",
        probes=lambda wc: list(UNLEARNING.probe_files.values()),
        checkpoints=lambda wc: [checkpoint_of(m) for m in UNLEARNING.independent],
    output:
        table=f"{UL_DIR}/{INDEPENDENT}.csv",
        record=f"{UL_DIR}/{INDEPENDENT}.json",
    log:
        f"{R}/logs/unlearning/{INDEPENDENT}.log",
    conda:
        ENV
    threads: 2
    resources:
        gpu=GPU,
        mem_mb=4000,
        runtime=30,
    params:
        job=lambda wc: canonical(UNLEARNING.independent_job()),
    script:
        "../scripts/unlearning_independent.py"


rule unlearning_table:
    input:
        lambda wc: [f"{UL_DIR}/{part}.csv" for part in UNLEARNING.parts],
    output:
        table=report(
            f"{UL_DIR}/trajectory.csv",
            caption="../report/unlearning_table.rst",
            category="Unlearning",
        ),
        plot=report(
            f"{UL_DIR}/trajectory.png",
            caption="../report/unlearning_plot.rst",
            category="Unlearning",
        ),
    log:
        f"{R}/logs/unlearning/table.log",
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/unlearning_table.py"


if UNLEARNING:
    TARGETS.extend([f"{UL_DIR}/trajectory.csv", f"{UL_DIR}/trajectory.png"])
