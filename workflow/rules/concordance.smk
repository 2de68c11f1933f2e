# Method concordance (docs/concordance.md): for every pair of a bounded model set that shares a task
# (one parent, its derived models, the zoo models of its setting), each method's verdict side by side:
# Zest and ModelGiF normalised distances (distance tables), a similarity measure and stitching relative
# accuracy at one layer; rank correlations between methods; a scatter matrix. The pairs are split into
# concordance.jobs jobs: a pair takes ~2 s, a job's start (Python, torch) ~5-10 s on a busy CPU.

from modelkin.concordance import chunk_job, plan_concordance

CONCORDANCE = plan_concordance(config, MODELS, DISTANCE_MODELS)
CC = config["concordance"]
CC_DIR = f"{R}/concordance"
CC_CHUNKS = range(len(CONCORDANCE.chunks)) if CONCORDANCE else []
CC_METHODS = list(CONCORDANCE.methods) if CONCORDANCE else []
CC_DISTANCES = CONCORDANCE.distance_methods if CONCORDANCE else []


rule concordance_pairs:
    input:
        checkpoints=lambda wc: [
            checkpoint_of(m) for m in CONCORDANCE.chunk_models(int(wc.chunk))
        ],
        data=lambda wc: f"{R}/data/{CONCORDANCE.dataset}.safetensors",
    output:
        directory(f"{CC_DIR}/jobs/{{chunk}}"),
    log:
        f"{R}/logs/concordance/pairs-{{chunk}}.log",
    wildcard_constraints:
        chunk="|".join(map(str, CC_CHUNKS)) or "(?!)",
    conda:
        ENV
    threads: 1
    resources:
        gpu=GPU,
        mem_mb=3000,
        runtime=60,
    params:
        job=lambda wc: canonical(chunk_job(config, CONCORDANCE, int(wc.chunk))),
    script:
        "../scripts/concordance_pairs.py"


rule concordance_table:
    input:
        pairs=[f"{CC_DIR}/jobs/{chunk}" for chunk in CC_CHUNKS],
        distances=[f"{R}/distances/{m}.csv" for m in CC_DISTANCES],
    output:
        pairs=report(
            f"{CC_DIR}/pairs.csv",
            caption="../report/concordance_pairs.rst",
            category="Concordance",
        ),
        correlations=report(
            f"{CC_DIR}/correlations.csv",
            caption="../report/concordance_correlations.rst",
            category="Concordance",
        ),
        relations=report(
            f"{CC_DIR}/relations.csv",
            caption="../report/concordance_relations.rst",
            category="Concordance",
        ),
    log:
        f"{R}/logs/concordance/table.log",
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        methods=CC_METHODS,
        distance_methods=CC_DISTANCES,
        distance_metric=CC["distance_metric"],
        min_group_pairs=CC["min_group_pairs"],
        expected_pairs=list(CONCORDANCE.pairs) if CONCORDANCE else [],
    script:
        "../scripts/concordance_table.py"


rule concordance_plot:
    input:
        f"{CC_DIR}/pairs.csv",
    output:
        report(
            f"{CC_DIR}/concordance.png",
            caption="../report/concordance_plot.rst",
            category="Concordance",
        ),
    log:
        f"{R}/logs/concordance/plot.log",
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        methods=CC_METHODS,
    script:
        "../scripts/concordance_plot.py"


if CONCORDANCE:
    TARGETS.extend(f"{CC_DIR}/jobs/{chunk}" for chunk in CC_CHUNKS)
    TARGETS.extend(
        [
            f"{CC_DIR}/pairs.csv",
            f"{CC_DIR}/correlations.csv",
            f"{CC_DIR}/relations.csv",
            f"{CC_DIR}/concordance.png",
        ]
    )
