# Shared settings and input functions; no rules here.
import json

from snakemake.utils import min_version, validate

from modelkin.config import recipe_for, zoo_seeds
from modelkin.data import DATASETS
from modelkin.models.architectures import ARCHITECTURES

min_version("8.0")


validate(config, "../schemas/config.schema.yaml")

R = config["results"]
ENV = "../../envs/modelkin.yaml"
# 1 GPU per training-like job unless the config pins the CPU; `--resources gpu=1` then serialises them
# locally, and the SLURM profile turns the resource into a GPU request.
GPU = 0 if config["device"] == "cpu" else 1


wildcard_constraints:
    dataset="|".join(DATASETS),
    arch="|".join(ARCHITECTURES),
    algorithm="|".join(config["training"]["algorithms"]),
    init_seed=r"\d+",
    data_seed=r"\d+",


def zoo_models():
    """Every (dataset, arch, algorithm, init_seed, data_seed) of the configured zoo."""
    zoo = config["zoo"]
    return [
        (d, a, alg, i, s)
        for d in zoo["datasets"]
        for a in zoo["architectures"]
        for alg in zoo["algorithms"]
        for i, s in zoo_seeds(config)
    ]


def model_id(dataset, arch, algorithm, init_seed, data_seed):
    return f"{dataset}/{arch}/{algorithm}/i{init_seed}-d{data_seed}"


def checkpoint_path(model):
    return f"{R}/models/{model}.safetensors"


# Stages that add models to the zoo (derived copies) append their model ids here.
EXTRA_MODELS = []


def all_models():
    return [model_id(*m) for m in zoo_models()] + EXTRA_MODELS


# Stages append the files that `snakemake` with no target should build.
TARGETS = [f"{R}/zoo.csv", f"{R}/plots/zoo.png"]


def all_targets(wildcards):
    return TARGETS


def canonical(value):
    """Key order never makes a job stale: Snakemake compares params by their printed form."""
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


def training_job(wildcards):
    seeds = {
        "init_seed": int(wildcards.init_seed),
        "data_seed": int(wildcards.data_seed),
    }
    recipe = recipe_for(
        config,
        dataset=wildcards.dataset,
        arch=wildcards.arch,
        algorithm=wildcards.algorithm,
        **seeds,
    )
    return canonical(
        {
            "arch": wildcards.arch,
            "algorithm": wildcards.algorithm,
            "recipe": recipe,
            "evaluation": config["evaluation"],
            "device": config["device"],
            **seeds,
        }
    )
