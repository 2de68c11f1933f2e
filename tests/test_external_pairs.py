"""Similarity pairs and stitching experiments between your own models (the models section):
planning, the questions section's similarity and stitching, and the errors a config gets for
models that do not exist or cannot be stitched. Torch-free, no job runs (the workflow test is
tests/test_workflow_external.py)."""

from __future__ import annotations

import pytest

from helpers import run_snakemake
from modelkin.config import ConfigError, validate_config
from modelkin.config_checks import config_problems
from modelkin.similarity.pairs import PairError, plan_pairs
from modelkin.stitching.plan import PlanError, checkpoint_for, planned_runs, run_datasets


def _config(tmp_path, similarity=None, stitching=None, questions=True):
    models = {}
    for name, dataset in (("a", "digits"), ("b", "digits"), ("far", "cifar10")):
        weights = tmp_path / f"{name}.pt"
        weights.write_bytes(b"")
        models[name] = {"source": "torchvision:resnet18", "weights": str(weights),
                        "dataset": dataset}  # fmt: skip
    sections = {k: v for k, v in (("similarity", similarity), ("stitching", stitching)) if v}
    config = {"results": str(tmp_path / "results"), "device": "cpu", "models": models}
    if questions:
        config["questions"] = sections
    else:
        config.update(sections)
    return validate_config(config)


def test_similarity_pairs_of_your_models_by_name_or_id(tmp_path):
    config = _config(
        tmp_path,
        similarity={
            "pairs": [{"a": "a", "b": "external/b", "layers_a": ["layer2.1"]}, ["far", "a"]],
            "layers": ["layer1.1"],
        },
    )
    # the questions section's similarity is the similarity section; the zoo is off
    assert config["similarity"]["pairs"] and "similarity" not in config["questions"]
    assert config["zoo"]["datasets"] == []
    first, second = plan_pairs(config)
    assert (first.model_a, first.model_b, first.name) == (
        "external/a", "external/b", "external.a__external.b",
    )  # fmt: skip
    assert (first.layers_a, first.layers_b) == (["layer2.1"], ["layer1.1"])
    # the probe is model A's data set, from the models section
    assert (first.dataset, second.dataset) == ("digits", "cifar10")
    # layer names of your own models are the job's to check (torch builds the network)
    assert config_problems(config, check_device=False) == []


def test_a_similarity_pair_of_one_model_under_its_two_names_is_refused(tmp_path):
    config = _config(tmp_path, similarity={"pairs": [["a", "external/a"]]})
    with pytest.raises(PairError, match="compares a model with itself"):
        plan_pairs(config)


def test_unknown_models_in_similarity_pairs_are_named(tmp_path):
    config = _config(tmp_path, similarity={"pairs": [["a", "nobody"], ["external/ghost", "b"]]})
    problems = config_problems(config, check_device=False)
    assert problems == [
        "similarity.pairs[0] (b): 'nobody' is neither a name of the models section (a, b, far) "
        "nor a model id ('nobody' is not a model id; ids are DATASET/ARCH/ALGORITHM/iINIT-dDATA "
        "(zoo), derived/DATASET/DERIVATION/PARENT_ID/sSEED (derived) or external/NAME "
        "(external))",
        "similarity.pairs[1] (a): external/ghost is not a model of the models section (its "
        "names: a, b, far); add it there with its source, weights and data set",
    ]
    with pytest.raises(PairError, match=r"similarity.pairs\[0\] \(b\): 'nobody' is neither"):
        plan_pairs(config)


def _experiment(pairs, layers=("layer2.1",)):
    return {"experiments": {"e": {"pairs": pairs, "layers": list(layers) if layers else "all",
                                  "options": {"epochs": 1}}}}  # fmt: skip


def test_stitching_between_your_models_by_name_or_id(tmp_path):
    config = _config(tmp_path, stitching=_experiment([["a", "external/b"]]), questions=False)
    assert config["zoo"]["datasets"]  # no questions: the zoo's defaults stay
    (run,) = planned_runs(config)
    assert (run.model1, run.model2, run.key) == (
        "external/a", "external/b", "e/external.a~external.b/layer2.1",
    )  # fmt: skip
    assert checkpoint_for(run.model1, config) == f"{tmp_path}/results/models/external/a.safetensors"
    assert run_datasets(run, config) == ["digits"]
    assert not [p for p in config_problems(config, check_device=False) if "stitching" in p]


@pytest.mark.parametrize(
    "pairs, layers, problem",
    [
        (
            [["a", "far"]],
            ["layer2.1"],
            "stitching.experiments.e.pairs[0]: external/a works on digits and external/far on "
            "cifar10; the stitched network trains and is evaluated on one data set, so both "
            "models must work on the same one (the models section's dataset:)",
        ),
        (
            [["a", "b"]],
            None,
            "stitching.experiments.e.pairs[0]: layers: all (every common cut point) needs two zoo "
            "architectures, and external/a is one of your own models; list the layers to stitch",
        ),
        (
            [["nobody", "b"]],
            ["layer2.1"],
            "stitching.experiments.e.pairs[0] (model 1): 'nobody' is neither a name of the models "
            "section (a, b, far) nor a model id",
        ),
        (
            [["a", "external/ghost"]],
            ["layer2.1"],
            "stitching.experiments.e.pairs[0] (model 2): external/ghost is not a model of the "
            "models section (its names: a, b, far)",
        ),
    ],
    ids=["two data sets", "layers all", "unknown name", "unknown external id"],
)
def test_stitching_pairs_that_cannot_be_stitched(tmp_path, pairs, layers, problem):
    config = _config(tmp_path, stitching=_experiment(pairs, layers))
    problems = config_problems(config, check_device=False)
    assert len(problems) == 1 and problems[0].startswith(problem), problems
    with pytest.raises(PlanError):
        planned_runs(config)


def test_a_section_written_in_both_places_is_refused():
    with pytest.raises(ConfigError, match="questions.stitching and stitching: the same section"):
        validate_config({"questions": {"stitching": {}}, "stitching": {}})


def test_snakemake_says_what_is_wrong_in_one_line(tmp_path):
    config = _config(tmp_path, stitching=_experiment([["a", "far"]]))
    del config  # written as a user would
    (tmp_path / "config.yaml").write_text(
        "models:\n"
        f"  a: {{source: 'torchvision:resnet18', weights: {tmp_path}/a.pt, dataset: digits}}\n"
        f"  far: {{source: 'torchvision:resnet18', weights: {tmp_path}/far.pt, dataset: cifar10}}\n"
        "questions:\n"
        "  stitching: {experiments: {e: {pairs: [[a, far]], layers: [layer2.1]}}}\n"
    )
    proc = run_snakemake(tmp_path, "-n", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "modelkin: invalid configuration (config.yaml): stitching.experiments.e.pairs[0]: "
            "external/a works on digits and external/far on cifar10"
        )
    ), proc.stderr
