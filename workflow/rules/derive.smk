# Derived models (docs/model-distance.md): fine-tuned, pruned, extracted, transferred and unlearned
# copies of zoo parents, the suspects whose distances the distance stage measures.
# Ids: derived/{dataset}/{derivation}/{parent id}/s{seed}; they join the zoo (EXTRA_MODELS).


include: "derive_common.smk"


rule derive:
    input:
        parent=lambda wc: checkpoint_path(wc.parent),
        data=f"{R}/data/{{dataset}}.safetensors",
    output:
        f"{R}/models/derived/{{dataset}}/{{derivation}}/{{parent}}/s{{seed}}.safetensors",
    log:
        f"{R}/logs/derive/{{dataset}}/{{derivation}}/{{parent}}/s{{seed}}.log",
    wildcard_constraints:
        derivation="|".join(config["derived"]["derivations"]) or "(?!)",
        parent=".+",
        seed=r"\d+",
    conda:
        ENV
    threads: 1
    resources:
        gpu=GPU,
        mem_mb=4000,
        runtime=60,
    params:
        job=derivation_job,
    script:
        "../scripts/derive.py"


# The same evaluation as the zoo's (it judges a derived model on the task it was trained for),
# for checkpoints that live under models/derived/.
rule evaluate_derived:
    input:
        checkpoint=f"{R}/models/derived/{{dataset}}/{{rest}}.safetensors",
        data=f"{R}/data/{{dataset}}.safetensors",
    output:
        f"{R}/eval/derived/{{dataset}}/{{rest}}.json",
    log:
        f"{R}/logs/evaluate_derived/{{dataset}}/{{rest}}.log",
    conda:
        ENV
    threads: 1
    resources:
        gpu=GPU,
        mem_mb=4000,
        runtime=60,
    params:
        evaluation=canonical(config["evaluation"]),
        device=config["device"],
    script:
        "../scripts/evaluate.py"


ruleorder: evaluate_derived > evaluate


EXTRA_MODELS.extend(DERIVED)
