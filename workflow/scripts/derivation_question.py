from modelkin.questions.derivation import derivation_stage
from modelkin.questions.plan import DerivationQuestion
from modelkin.workflow import snakemake_job

with snakemake_job(snakemake):
    derivation_stage(
        DerivationQuestion.from_dict(snakemake.params.question),
        snakemake.input.signatures,
        snakemake.output[0],
        calibration=snakemake.params.calibration,
        memory_budget_mb=snakemake.params.memory_budget_mb,
    )
