# Behavioural signatures (docs/signatures.md): Zest and ModelGiF.
# Probes are made once per data set and shared by every model of it; each model gets one
# signature file per method: {R}/signatures/{method}/{model}.h5 for any model id.


include: "signatures_common.smk"


rule zest_probe:
    input:
        data=f"{R}/data/{{dataset}}.safetensors",
    output:
        zest_probe_path("{dataset}"),
    log:
        f"{R}/logs/zest_probe/{{dataset}}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        probe=canonical({k: config["zest"][k] for k in ZEST_PROBE_KEYS}),
    script:
        "../scripts/zest_probe.py"


rule zest_signature:
    input:
        checkpoint=lambda wc: checkpoint_path(wc.model),
        probe=lambda wc: zest_probe_path(model_dataset(wc.model)),
    output:
        signature_file("zest", "{model}"),
    log:
        f"{R}/logs/zest_signature/{{model}}.log",
    conda:
        ENV
    threads: 2
    resources:
        gpu=GPU,
        mem_mb=4000,
        runtime=30,
    params:
        chunk_size=config["zest"]["chunk_size"],
        device=config["device"],
    script:
        "../scripts/zest_signature.py"


rule gradfield_candidates:
    input:
        data=f"{R}/data/{{dataset}}.safetensors",
    output:
        gradfield_candidates_path("{dataset}"),
    log:
        f"{R}/logs/gradfield_candidates/{{dataset}}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        candidates=canonical(config["gradfield"]["candidates"]),
    script:
        "../scripts/gradfield_candidates.py"


rule gradfield_candidate_signature:
    input:
        checkpoint=lambda wc: checkpoint_path(wc.model),
        probe=lambda wc: gradfield_candidates_path(model_dataset(wc.model)),
    output:
        temp(f"{R}/probes/gradfield/candidate_signatures/{{model}}.h5"),
    log:
        f"{R}/logs/gradfield_candidate_signature/{{model}}.log",
    conda:
        ENV
    threads: 2
    resources:
        gpu=GPU,
        mem_mb=4000,
        runtime=30,
    params:
        job=canonical(gradfield_job()),
    script:
        "../scripts/gradfield_candidate_signature.py"


rule gradfield_probe:
    input:
        candidates=gradfield_candidates_path("{dataset}"),
        signatures=lambda wc: [
            f"{R}/probes/gradfield/candidate_signatures/{m}.h5"
            for m in gradfield_selection_models(wc.dataset)
        ],
    output:
        gradfield_probe_path("{dataset}"),
    log:
        f"{R}/logs/gradfield_probe/{{dataset}}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        k=config["gradfield"]["reference_points"],
    script:
        "../scripts/gradfield_probe.py"


rule gradfield_signature:
    input:
        checkpoint=lambda wc: checkpoint_path(wc.model),
        probe=lambda wc: gradfield_probe_path(model_dataset(wc.model)),
    output:
        signature_file("gradfield", "{model}"),
    log:
        f"{R}/logs/gradfield_signature/{{model}}.log",
    conda:
        ENV
    threads: 2
    resources:
        gpu=GPU,
        mem_mb=4000,
        runtime=30,
    params:
        job=canonical(gradfield_job()),
    script:
        "../scripts/gradfield_signature.py"


for _method in ("zest", "gradfield"):
    if config[_method]["build_for_zoo"]:
        TARGETS.extend(signature_file(_method, model_id(*m)) for m in zoo_models())
