# Behavioural signatures (docs/signatures.md): one set of rules for every method of the registry
# (modelkin.signatures.METHODS). Probes are made once per data set and shared by every model of it;
# each model gets one signature file per method. Paths: modelkin.signatures.plan.

SELECTING = [m.name for m in METHODS.values() if m.probe_kind and m.selects_probe]
DIRECT = [m.name for m in METHODS.values() if m.probe_kind and not m.selects_probe]


rule probe:
    input:
        data=f"{R}/data/{{dataset}}.safetensors",
    output:
        probe_path(R, "{method}", "{dataset}"),
    log:
        f"{R}/logs/probe/{{method}}/{{dataset}}.log",
    wildcard_constraints:
        method="|".join(DIRECT) or "(?!)",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        settings=lambda wc: canonical(probe_settings(config, wc.method)),
    script:
        "../scripts/probe.py"


rule candidate_probe:
    input:
        data=f"{R}/data/{{dataset}}.safetensors",
    output:
        candidates_path(R, "{method}", "{dataset}"),
    log:
        f"{R}/logs/candidate_probe/{{method}}/{{dataset}}.log",
    wildcard_constraints:
        method="|".join(SELECTING) or "(?!)",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        settings=lambda wc: canonical(probe_settings(config, wc.method)),
    script:
        "../scripts/probe.py"


rule candidate_signature:
    input:
        checkpoint=lambda wc: checkpoint_of(wc.model),
        probe=lambda wc: candidates_path(R, wc.method, MODELS.dataset(wc.model)),
    output:
        temp(candidate_signature_path(R, "{method}", "{model}")),
    log:
        f"{R}/logs/candidate_signature/{{method}}/{{model}}.log",
    wildcard_constraints:
        method="|".join(SELECTING) or "(?!)",
    conda:
        ENV
    threads: 2
    resources:
        gpu=GPU,
        mem_mb=4000,
        runtime=30,
    params:
        job=signature_params,
    script:
        "../scripts/signature.py"


rule selected_probe:
    input:
        candidates=candidates_path(R, "{method}", "{dataset}"),
        signatures=lambda wc: [
            candidate_signature_path(R, wc.method, m)
            for m in selection_models(config, MODELS, wc.method, wc.dataset)
        ],
    output:
        probe_path(R, "{method}", "{dataset}"),
    log:
        f"{R}/logs/selected_probe/{{method}}/{{dataset}}.log",
    wildcard_constraints:
        method="|".join(SELECTING) or "(?!)",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        settings=lambda wc: canonical(selection_settings(config, wc.method)),
    script:
        "../scripts/selected_probe.py"


rule signature:
    input:
        checkpoint=lambda wc: checkpoint_of(wc.model),
        probe=lambda wc: signature_probe(wc.method, wc.model),
    output:
        signature_path(R, "{method}", "{model}"),
    log:
        f"{R}/logs/signature/{{method}}/{{model}}.log",
    wildcard_constraints:
        method="|".join(METHODS),
    conda:
        ENV
    threads: 2
    resources:
        gpu=GPU,
        mem_mb=4000,
        runtime=30,
    params:
        job=signature_params,
    script:
        "../scripts/signature.py"


rule signature_on_probe:
    input:
        checkpoint=lambda wc: checkpoint_of(wc.model),
        probe=lambda wc: probe_path(R, wc.method, wc.probe),
    output:
        signature_path(R, "{method}", "{model}", probe="{probe}"),
    log:
        f"{R}/logs/signature/{{method}}@{{probe}}/{{model}}.log",
    wildcard_constraints:
        method="|".join(SELECTING + DIRECT) or "(?!)",
        probe="|".join(DATASETS),
    conda:
        ENV
    threads: 2
    resources:
        gpu=GPU,
        mem_mb=4000,
        runtime=30,
    params:
        job=signature_params,
    script:
        "../scripts/signature.py"


for _method in METHODS:
    if config.get(_method, {}).get("build_for_zoo"):
        TARGETS.extend(signature_file(_method, m) for m in MODELS.zoo_of())
