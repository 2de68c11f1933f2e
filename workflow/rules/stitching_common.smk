# Settings and input functions of the stitching stage (no rules; included by stitching.smk).

from modelkin.stitching.plan import (
    checkpoint_for,
    planned_runs,
    run_datasets,
    run_job,
    task_donors,
    task_of,
)

STITCH_RUNS = {run.key: run for run in planned_runs(config)}
STITCH_DONORS = {donor.model_id: donor for donor in task_donors(config)}


def stitch_run(wildcards):
    key = f"{wildcards.experiment}/{wildcards.pair}/{wildcards.layers}"
    if key not in STITCH_RUNS:
        raise ValueError(
            f"stitching run {key} is not planned by config.yaml (stitching.experiments); planned: "
            f"{', '.join(sorted(STITCH_RUNS)[:5])}{' ...' if len(STITCH_RUNS) > 5 else ''}"
        )
    return STITCH_RUNS[key]


def stitch_inputs(wildcards):
    run = stitch_run(wildcards)
    return {
        "checkpoints": [
            checkpoint_for(run.model1, config),
            checkpoint_for(run.model2, config),
        ],
        "data": [f"{R}/data/{d}.safetensors" for d in run_datasets(run, config)],
    }


def stitch_job(wildcards):
    return canonical(run_job(stitch_run(wildcards), config))


def stitch_donor_job(wildcards):
    model = str(
        ZooId(
            wildcards.task,
            wildcards.arch,
            wildcards.algorithm,
            int(wildcards.init_seed),
            int(wildcards.data_seed),
        )
    )
    if model not in STITCH_DONORS:
        raise ValueError(
            f"task donor {model} is not used by any stitching experiment in config.yaml"
        )
    task = task_of(wildcards.task, config)
    seeds = {
        "init_seed": int(wildcards.init_seed),
        "data_seed": int(wildcards.data_seed),
    }
    recipe = recipe_for(
        config,
        dataset=task.dataset,
        arch=wildcards.arch,
        algorithm=wildcards.algorithm,
        **seeds,
    )
    return canonical(
        {
            "task": task.to_dict(),
            "arch": wildcards.arch,
            "algorithm": wildcards.algorithm,
            "recipe": recipe,
            "device": config["device"],
            **seeds,
        }
    )


STITCH_RESULTS = [f"{R}/stitching/runs/{key}.json" for key in STITCH_RUNS]
