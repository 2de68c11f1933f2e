# The zoo: every model of the zoo section (and ModelDiff's algorithms) trained from scratch, then
# evaluated once by the `evaluate` rule, which serves every model (zoo and derived) alike.


rule train:
    input:
        data=f"{R}/data/{{dataset}}.safetensors",
    output:
        checkpoint=f"{R}/models/{{dataset}}/{{arch}}/{{algorithm}}/i{{init_seed}}-d{{data_seed}}.safetensors",
    log:
        f"{R}/logs/train/{{dataset}}/{{arch}}/{{algorithm}}/i{{init_seed}}-d{{data_seed}}.log",
    conda:
        ENV
    threads: 2
    resources:
        gpu=GPU,
        mem_mb=4000,
        runtime=120,
    params:
        job=training_job,
    script:
        "../scripts/train.py"


rule evaluate:
    input:
        checkpoint=lambda wc: checkpoint_of(wc.model),
        data=lambda wc: f"{R}/data/{MODELS.dataset(wc.model)}.safetensors",
    output:
        f"{R}/eval/{{model}}.json",
    log:
        f"{R}/logs/evaluate/{{model}}.log",
    conda:
        ENV
    threads: 2
    resources:
        gpu=GPU,
        mem_mb=4000,
        runtime=60,
    params:
        evaluation=canonical(config["evaluation"]),
        device=config["device"],
    script:
        "../scripts/evaluate.py"


rule zoo_table:
    input:
        evaluations=lambda wc: [f"{R}/eval/{m}.json" for m in MODELS.all()],
    output:
        report(f"{R}/zoo.csv", caption="../report/zoo.rst", category="Zoo"),
    log:
        f"{R}/logs/zoo_table.log",
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/zoo_table.py"


rule zoo_plot:
    input:
        f"{R}/zoo.csv",
    output:
        report(f"{R}/plots/zoo.png", caption="../report/zoo_plot.rst", category="Zoo"),
    log:
        f"{R}/logs/zoo_plot.log",
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/zoo_plot.py"


# Every file a summary reads is a target too, so that deleting one rebuilds it (Snakemake does not
# rebuild a deleted input of a job whose outputs are up to date).
TARGETS.extend(f"{R}/eval/{m}.json" for m in MODELS.all())
