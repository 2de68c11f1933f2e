"""What the workflow's modeldiff section plans (modelkin.modeldiff.plan): files, job settings and
the configuration errors that stop Snakemake before any job. No Snakemake and no torch here."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest

from helpers import TINY_CONFIG
from modelkin.catalog import modeldiff_models
from modelkin.config import ConfigError, load_config, validate_config
from modelkin.ids import ZooId
from modelkin.modeldiff.plan import KIND_SLUGS, ModelDiffPlan, seed_pairs

COMPARISON = "results/modeldiff/digits/lenet/md_clean-vs-md_patch"
PATCH = {
    "target_class": 3,
    "fraction": 0.5,
    "size": 12,
    "color": [1.0],
    "position": [0, 0],
    "seed": 0,
}


@pytest.fixture
def config() -> dict:
    return load_config(TINY_CONFIG)


def with_changes(config: dict, **section) -> dict:
    """A validated copy of ``config`` with these ``modeldiff`` settings changed."""
    changed = copy.deepcopy(config)
    changed["modeldiff"].update(section)
    return validate_config(changed)


def test_the_tiny_config_plans_the_files_the_workflow_has_always_made(config):
    plan = ModelDiffPlan.from_config(config)
    assert plan.roles == {"A": "md_clean", "B": "md_patch"}
    assert plan.seeds == ((0, 0), (1, 1))
    assert plan.directory == COMPARISON
    assert plan.models("md_patch") == [
        ZooId("digits", "lenet", "md_patch", 0, 0),
        ZooId("digits", "lenet", "md_patch", 1, 1),
    ]
    assert plan.checkpoints("md_clean") == [
        "results/models/digits/lenet/md_clean/i0-d0.safetensors",
        "results/models/digits/lenet/md_clean/i1-d1.safetensors",
    ]
    assert plan.features("md_patch") == [
        "results/modeldiff/trak/digits/lenet/md_patch/i0-d0.h5",
        "results/modeldiff/trak/digits/lenet/md_patch/i1-d1.h5",
    ]
    assert plan.scores("md_clean") == "results/modeldiff/scores/digits/lenet/md_clean.h5"
    grids = [f"{COMPARISON}/grids/{k}_{c}.png" for k in ("A_minus_B", "B_minus_A") for c in (0, 1)]
    assert plan.grids == grids
    assert plan.grid_keys == [(k, c) for k in ("A-minus-B", "B-minus-A") for c in (0, 1)]
    assert plan.outputs == [
        f"{COMPARISON}/summary.json",
        f"{COMPARISON}/summary.png",
        f"{COMPARISON}/directions.csv",
        f"{COMPARISON}/surfaced.csv",
        f"{COMPARISON}/counterfactual.csv",
        *grids,
    ]
    lds = "results/modeldiff/lds/digits/lenet/md_clean"
    assert plan.lds_algorithm == "md_clean" and plan.lds_summary == f"{lds}/lds.json"
    assert plan.lds_subsets("digits", "lenet", "md_clean") == [
        f"{lds}/subset{j}.h5" for j in range(4)
    ]


def test_job_settings(config):
    plan = ModelDiffPlan.from_config(config)
    assert plan.planted_patch == PATCH  # algorithm B's, from its recipe
    assert plan.trak_features_job(1, 1) == {
        "settings": {
            "proj_dim": 128,
            "proj_type": "rademacher",
            "seed": 0,
            "ridge": 0.0,
            "rescale_inverse": True,
            "batch_size": None,
            "max_projection_mib": 1024,
            "precision": "fp32",
        },
        "checkpoint_index": 1,
        "train_data": "as_trained",
        "targets": "test",
        "n_targets": 100,
        "target_patch": PATCH,
        "device": "cpu",
        "memory_budget_mb": 8000,
    }
    assert plan.lds_subset_job(2) == {
        "subset_index": 2,
        "alpha": 0.5,
        "seed": 0,
        "models_per_subset": 1,
        "targets": "test",
        "n_targets": 100,
        "target_patch": PATCH,
        "device": "cpu",
    }
    with pytest.raises(ConfigError, match="i2-d2 is not among modeldiff.seeds"):
        plan.trak_features_job(2, 2)


def test_seeds_give_checkpoints_and_projection_indices(config):
    seeds = [3, {"init": 1, "data": 4}]
    assert seed_pairs(seeds) == [(3, 3), (1, 4)]
    changed = with_changes(config, seeds=seeds)
    plan = ModelDiffPlan.from_config(changed)
    assert plan.checkpoints("md_clean")[1] == (
        "results/models/digits/lenet/md_clean/i1-d4.safetensors"
    )
    assert plan.trak_features_job(1, 4)["checkpoint_index"] == 1
    # the catalog trains exactly the checkpoints the plan compares
    assert modeldiff_models(changed) == plan.models("md_clean") + plan.models("md_patch")


def test_target_patch_and_lds_follow_their_switches(config):
    changed = copy.deepcopy(config)
    changed["modeldiff"]["trak"]["plant_targets"] = False
    changed["modeldiff"]["lds"]["enabled"] = False
    plan = ModelDiffPlan.from_config(changed)
    assert plan.planted_patch is not None and plan.target_patch is None
    assert plan.trak_features_job(0, 0)["target_patch"] is None
    assert plan.lds_summary is None
    other = copy.deepcopy(config)
    other["modeldiff"]["lds"]["algorithm"] = "md_patch"
    assert ModelDiffPlan.from_config(other).lds_summary == (
        "results/modeldiff/lds/digits/lenet/md_patch/lds.json"
    )


def test_planted_patch_is_b_s_else_a_s_else_none(config):
    swapped = with_changes(config, algorithm_a="md_patch", algorithm_b="md_clean")
    plan = ModelDiffPlan.from_config(swapped)
    assert plan.planted_patch == PATCH  # B plants none: A's
    assert plan.directory.endswith("/md_patch-vs-md_clean")
    neither = with_changes(config, algorithm_a="standard", algorithm_b="md_clean")
    assert ModelDiffPlan.from_config(neither).planted_patch is None


def test_configuration_errors_stop_planning(config):
    with pytest.raises(ConfigError, match="algorithm_b is 'md_missing'.*training.algorithms"):
        ModelDiffPlan.from_config(with_changes(config, algorithm_b="md_missing"))
    with pytest.raises(ConfigError, match="the same algorithm"):
        ModelDiffPlan.from_config(with_changes(config, algorithm_b="md_clean"))
    # not run by default: an undefined algorithm is no error, and nothing is planted
    quiet = with_changes(config, algorithm_b="md_missing", run_by_default=False)
    plan = ModelDiffPlan.from_config(quiet)
    assert plan.planted_patch is None and modeldiff_models(quiet) == []


def test_kind_slugs_name_every_kind_and_planning_loads_neither_torch_nor_sklearn():
    from modelkin.modeldiff.directions import KINDS

    assert tuple(KIND_SLUGS) == KINDS
    code = (
        "import sys, modelkin.modeldiff.plan; "
        "print(sorted(m for m in ('torch', 'sklearn', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- the user's own checkpoints (modeldiff.models_a, models_b) ----------------------------------


def external_config(models_a=("a0", "external/a1"), models_b=("b0", "b1"), **section) -> dict:
    """A validated configuration comparing the user's checkpoints a0, a1 with b0, b1 (digits)."""
    entry = {"source": "checkpoint", "dataset": "digits"}
    models = {
        name: {**entry, "weights": f"w/{name}.safetensors"} for name in ("a0", "a1", "b0", "b1")
    }
    models["other"] = {**entry, "weights": "w/other.pt", "dataset": "cifar10"}
    md = {"dataset": "digits", "models_a": list(models_a), "models_b": list(models_b), **section}
    return validate_config({"results": "results", "models": models, "modeldiff": md})


def test_the_user_s_checkpoints_are_planned_like_two_algorithms():
    plan = ModelDiffPlan.from_config(external_config())
    assert plan.roles == {"A": "models_a", "B": "models_b"}
    assert plan.directory == "results/modeldiff/digits/external/models_a-vs-models_b"
    assert plan.checkpoints("models_a") == [
        "results/models/external/a0.safetensors",
        "results/models/external/a1.safetensors",
    ]
    assert plan.features("models_b") == [
        "results/modeldiff/trak-external/digits/models_b/b0.h5",
        "results/modeldiff/trak-external/digits/models_b/b1.h5",
    ]
    assert plan.scores("models_a") == "results/modeldiff/scores/digits/external/models_a.h5"
    job = plan.external_features_job("models_b", "b1")
    assert job["checkpoint_index"] == 1 and job["external"] is True
    assert job["target_patch"] is None
    # the LDS needs retraining: skipped, and the summary says why
    assert plan.lds_summary is None and set(plan.skipped) == {"lds"}
    assert f"{plan.directory}/summary.json" in plan.outputs
    # nothing for the train rule: the checkpoints are the models section's
    assert modeldiff_models(external_config()) == []
    # the counterfactual's patch is planted on the attributed examples
    patch = {k: PATCH[k] for k in ("target_class", "size", "color", "position")}
    patched = ModelDiffPlan.from_config(external_config(counterfactual={"patch": patch}))
    assert patched.external_features_job("models_a", "a0")["target_patch"] == patch


def test_the_sides_need_not_be_the_same_size():
    """Each side is its own TRAK ensemble; checkpoint m of either side uses projection matrix m."""
    plan = ModelDiffPlan.from_config(external_config(models_a=["a1"], models_b=["b0", "a0", "b1"]))
    assert [
        plan.external_features_job("models_b", n)["checkpoint_index"] for n in ("b0", "a0", "b1")
    ] == [0, 1, 2]
    assert plan.external_features_job("models_a", "a1")["checkpoint_index"] == 0
    with pytest.raises(ConfigError, match="not among the checkpoints of modeldiff.models_a"):
        plan.external_features_job("models_a", "b0")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"models_a": ["a0", "nope"]}, "'nope' is not a model of the models section"),
        ({"models_b": ["other"]}, "other is a model of data set 'cifar10'"),
        ({"models_b": ["b0", "b0"]}, "lists external/b0 more than once"),
        ({"models_b": ["a1", "a0"]}, "are the same checkpoints"),
    ],
)
def test_errors_in_the_user_s_checkpoints_stop_planning(change, message):
    with pytest.raises(ConfigError, match=message):
        ModelDiffPlan.from_config(external_config(**change))


def test_both_forms_or_one_side_only_are_configuration_errors():
    with pytest.raises(ConfigError, match="not both"):
        external_config(algorithm_a="md_clean")
    with pytest.raises(ConfigError, match="not both"):
        external_config(seeds=[0, 1])
    with pytest.raises(ConfigError, match="needs modeldiff.models_b"):
        validate_config({"modeldiff": {"models_a": ["a0"]}})
    with pytest.raises(ConfigError, match="models_b"):
        external_config(models_b=[])
