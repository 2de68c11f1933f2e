# Your own models and the questions you ask about them (docs/your-models.md): each model of the
# models section imported once into a modelkin checkpoint (its signatures, similarity and
# stitching then run as for a zoo model), and one table and figure per derivation question.


rule import_model:
    input:
        weights=lambda wc: external_spec(wc).weights,
    output:
        f"{R}/models/external/{{name}}.safetensors",
    log:
        f"{R}/logs/import_model/{{name}}.log",
    wildcard_constraints:
        name=r"[A-Za-z0-9][A-Za-z0-9_+.-]*",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        job=lambda wc: canonical(external_spec(wc).import_job()),
        # The content, not the timestamp: a weights file replaced by an older one re-imports too.
        weights_sha256=weights_sha256,
    script:
        "../scripts/import_model.py"


rule derivation_question:
    input:
        signatures=question_signatures,
    output:
        report(
            question_path(R, "derivation", "{question}", ".csv"),
            caption="../report/derivation_question.rst",
            category="Your questions",
        ),
    log:
        f"{R}/logs/derivation_question/{{question}}.log",
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        question=lambda wc: canonical(DERIVATION_QUESTIONS[wc.question].to_dict()),
        calibration=canonical(config["distances"]["calibration"]),
        memory_budget_mb=config["memory_budget_mb"],
    script:
        "../scripts/derivation_question.py"


rule derivation_plot:
    input:
        question_path(R, "derivation", "{question}", ".csv"),
    output:
        report(
            question_path(R, "derivation", "{question}", ".png"),
            caption="../report/derivation_plot.rst",
            category="Your questions",
        ),
    log:
        f"{R}/logs/derivation_plot/{{question}}.log",
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/derivation_plot.py"


for _question in DERIVATION_QUESTIONS:
    TARGETS.extend(
        question_path(R, "derivation", _question, suffix) for suffix in (".csv", ".png")
    )
