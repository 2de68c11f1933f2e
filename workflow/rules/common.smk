# Shared settings and input functions; no rules here. Planning imports no torch.
import os
import sys

from snakemake.utils import min_version

from modelkin.catalog import ModelCatalog
from modelkin.config import recipe_for, validate_config
from modelkin.config_checks import check_config
from modelkin.data_sources import config_source, source_files
from modelkin.io import file_sha256
from modelkin.questions.derivation import signature_inputs
from modelkin.questions.plan import derivation_questions, question_path
from modelkin.datasets import DATASETS, check_augmentation
from modelkin.errors import ModelkinError
from modelkin.ids import ZooId
from modelkin.signatures import METHODS
from modelkin.signatures.plan import (
    candidate_signature_path,
    candidates_path,
    probe_path,
    probe_settings,
    selection_models,
    selection_settings,
    signature_job,
    signature_path,
)

min_version("8.0")


# The whole configuration is checked before any job is planned: the schema (each key), then the
# cross-field checks (model ids, algorithms, layers, sizes, references, device; modelkin.config_checks).
# A problem stops Snakemake with one line each, and no traceback. `device: cuda` is checked only
# where jobs run on this machine (not when they are submitted to a cluster).
CONFIG_SOURCE = ", ".join(
    os.path.relpath(f) for f in (workflow.overwrite_configfiles or workflow.configfiles)
)
try:
    validate_config(config, source=CONFIG_SOURCE)
    check_config(config, source=CONFIG_SOURCE, check_device=workflow.local_exec)
except ModelkinError as err:
    sys.exit(f"modelkin: {err}")

R = config["results"]
ENV = "../../envs/modelkin.yaml"
# 1 GPU per training-like job unless the config pins the CPU; `--resources gpu=1` then serialises them
# locally, and the SLURM profile turns the resource into a GPU request.
GPU = 0 if config["device"] == "cpu" else 1
# Every model the config plans (zoo, ModelDiff's, derived), by id: modelkin.catalog.
MODELS = ModelCatalog(config)


wildcard_constraints:
    dataset="|".join(DATASETS),
    arch="[^/]+",
    algorithm="[^/]+",
    init_seed=r"\d+",
    data_seed=r"\d+",


def checkpoint_of(model):
    return MODELS.checkpoint(model)


# Stages append the files that `snakemake` with no target should build.
TARGETS = [f"{R}/zoo.csv", f"{R}/plots/zoo.png"] if MODELS.zoo else []


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
    model = ZooId(
        wildcards.dataset,
        wildcards.arch,
        wildcards.algorithm,
        int(wildcards.init_seed),
        int(wildcards.data_seed),
    )
    if not MODELS.is_trained(model):
        MODELS.resolve(
            model, "the train rule"
        )  # raises, saying why the model is not planned
    recipe = recipe_for(
        config,
        dataset=model.dataset,
        arch=model.arch,
        algorithm=model.algorithm,
        init_seed=model.init_seed,
        data_seed=model.data_seed,
    )
    check_augmentation(
        DATASETS[model.dataset], recipe.get("augment", False), f"the recipe of {model}"
    )
    return canonical(
        {
            "arch": model.arch,
            "algorithm": model.algorithm,
            "recipe": recipe,
            "device": config["device"],
            "init_seed": model.init_seed,
            "data_seed": model.data_seed,
        }
    )


def signature_file(method, model):
    return signature_path(R, method, model)


def signature_probe(method, model):
    """The probe a model's signature reads (none for a method that reads no probe)."""
    if METHODS[method].probe_kind is None:
        return []
    return probe_path(R, method, MODELS.dataset(model))


def signature_params(wildcards):
    return canonical(signature_job(config, wildcards.method, wildcards.model))


def derivation_job(wildcards):
    model = MODELS.resolve(
        f"derived/{wildcards.dataset}/{wildcards.derivation}/{wildcards.parent}/s{wildcards.seed}",
        "the derive rule",
    )
    planned = MODELS.derived[model]
    return canonical(
        {
            "model_id": model,
            "parent_id": planned.parent,
            "derivation": planned.derivation,
            "settings": planned.settings,
            "device": config["device"],
        }
    )


# -- users' data sets (config `datasets:`) -----------------------------------------------------


def data_source_files(wildcards):
    """A user data set (config `datasets:`) is prepared from its files: every image of a folder, or
    the one NPZ/HDF5 file, so that adding, removing or changing one prepares it again.
    """
    source = config_source(wildcards.dataset)
    return source_files(source) if source is not None else []


def data_setting(wildcards):
    """What the preparation reads besides its input files, for the params rerun trigger: a built-in
    data set's data_root, a user data set's config entry (changing its size, channels, ... prepares
    it again). One value either way, so that data sets prepared before user data sets existed keep
    their recorded params (Snakemake records the values, not their names)."""
    entry = config["datasets"].get(wildcards.dataset)
    return config["data_root"] if entry is None else canonical(entry)


# -- users' own models and questions (config `models:`, `questions:`) -------------------------

DERIVATION_QUESTIONS = {q.name: q for q in derivation_questions(config, MODELS.resolve)}


def external_spec(wildcards):
    return MODELS.external[f"external/{wildcards.name}"]


def weights_sha256(wildcards):
    """The hash of a model's weights file, a param of its import (empty before it exists: the
    missing input is then Snakemake's error)."""
    path = external_spec(wildcards).weights
    return file_sha256(path) if os.path.isfile(path) else ""


def question_signatures(wildcards):
    question = DERIVATION_QUESTIONS[wildcards.question]
    files = signature_inputs(question, path_of=signature_file)
    return [path for method in question.methods for path in files[method].values()]
