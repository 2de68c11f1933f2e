# Layer-by-layer representational similarity (docs/similarity.md): every configured model pair's
# layers compared by CKA, CCA, ... on the first images of a split; layer x layer heatmaps per pair;
# a matched-layer summary across pairs for cross-method tables.


include: "similarity_common.smk"


rule similarity:
    input:
        checkpoint_a=lambda wc: checkpoint_of(similarity_pair(wc).model_a),
        checkpoint_b=lambda wc: checkpoint_of(similarity_pair(wc).model_b),
        data=lambda wc: f"{R}/data/{similarity_pair(wc).dataset}.safetensors",
    output:
        table=report(
            f"{R}/similarity/{{pair}}.csv",
            caption="../report/similarity_table.rst",
            category="Similarity",
            subcategory="{pair}",
        ),
        heatmap=report(
            f"{R}/similarity/{{pair}}.png",
            caption="../report/similarity_heatmap.rst",
            category="Similarity",
            subcategory="{pair}",
        ),
    log:
        f"{R}/logs/similarity/{{pair}}.log",
    wildcard_constraints:
        pair=similarity_pair_constraint(),
    conda:
        ENV
    threads: 2
    resources:
        gpu=GPU,
        mem_mb=4000,
        runtime=30,
    params:
        job=similarity_params,
    script:
        "../scripts/similarity.py"


rule similarity_summary:
    input:
        lambda wc: [f"{R}/similarity/{name}.csv" for name in SIMILARITY_PAIRS],
    output:
        report(
            f"{R}/similarity/summary.csv",
            caption="../report/similarity_summary.rst",
            category="Similarity",
        ),
    log:
        f"{R}/logs/similarity/summary.log",
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/similarity_summary.py"


if SIMILARITY_PAIRS:
    TARGETS.append(f"{R}/similarity/summary.csv")
    TARGETS.extend(f"{R}/similarity/{name}.png" for name in SIMILARITY_PAIRS)
    TARGETS.extend(f"{R}/similarity/{name}.csv" for name in SIMILARITY_PAIRS)
