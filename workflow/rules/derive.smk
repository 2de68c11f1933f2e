# Derived models (docs/model-distance.md): fine-tuned, pruned, extracted, transferred and unlearned
# copies of zoo parents, the suspects whose distances the distance stage measures.
# Ids: derived/{dataset}/{derivation}/{parent id}/s{seed} (modelkin.ids); planned by modelkin.derive.plan.


rule derive:
    input:
        parent=lambda wc: checkpoint_of(wc.parent),
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
