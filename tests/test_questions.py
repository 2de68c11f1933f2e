"""Questions about your own models: planning, calibrated derivation verdicts, config checks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from modelkin.catalog import ModelCatalog
from modelkin.config import validate_config
from modelkin.config_checks import config_problems
from modelkin.distances.calibration import CalibrationSettings
from modelkin.errors import InputError
from modelkin.questions.derivation import NOT_COMPARABLE, _metric_rows
from modelkin.questions.plan import DerivationQuestion, derivation_questions, external_models


def _config(tmp_path, references=4, **question):
    weights = {}
    for name in ["victim", "suspect", *[f"ref{i}" for i in range(references)]]:
        path = tmp_path / f"{name}.pt"
        path.write_bytes(b"")
        weights[name] = {
            "source": "torchvision:resnet18",
            "weights": str(path),
            "dataset": "digits",
        }
    entry = {
        "victim": "victim",
        "suspects": ["suspect"],
        "references": [f"ref{i}" for i in range(references)],
        "methods": ["zest"],
        **question,
    }
    config = {"results": str(tmp_path / "results"), "device": "cpu", "models": weights,
              "questions": {"derivation": {"q": entry}}}  # fmt: skip
    return validate_config(config)


def _resolve(config):
    """The catalog's check, as the workflow passes it."""
    return ModelCatalog(config).resolve


def test_a_config_with_questions_trains_no_zoo_and_runs_no_default_stage(tmp_path):
    config = _config(tmp_path)
    assert config["zoo"]["datasets"] == []
    assert config["distances"]["methods"] == []
    assert config["modeldiff"]["run_by_default"] is False
    assert config["lineage"]["enabled"] is False
    # a section the file writes keeps its own values
    config = validate_config({"questions": {}, "zoo": {"datasets": ["digits"]}})
    assert config["zoo"]["architectures"]  # schema defaults, no questions asked


def test_questions_name_models_by_their_models_name(tmp_path):
    config = _config(tmp_path)
    (question,) = derivation_questions(config, _resolve(config))
    assert question.victim == "external/victim"
    assert question.suspects == ("external/suspect",)
    assert question.references[0] == "external/ref0"
    assert question.methods == ("zest",)
    assert set(external_models(config)) == {f"external/{n}" for n in config["models"]}
    assert DerivationQuestion.from_dict(question.to_dict()) == question


def test_a_reference_that_is_also_a_suspect_is_refused(tmp_path):
    config = _config(tmp_path, suspects=["suspect", "ref0"])
    with pytest.raises(InputError, match="both a reference and the victim or a suspect"):
        derivation_questions(config, _resolve(config))


def test_config_checks_name_missing_weights_bad_sources_and_too_few_references(tmp_path):
    config = _config(tmp_path, references=2)
    config["models"]["victim"]["weights"] = str(tmp_path / "nowhere.pt")
    config["models"]["suspect"]["source"] = "resnet18"
    problems = "\n".join(config_problems(config, check_device=False))
    assert "models.victim.weights" in problems and "nowhere.pt does not exist" in problems
    assert "models.suspect.source 'resnet18' is not a model source" in problems
    assert "has 2 references" in problems and "add 2 more" in problems
    config = _config(tmp_path, suspects=["nobody"])
    problems = "\n".join(config_problems(config, check_device=False))
    assert "'nobody' is neither a name of the models section" in problems


def _synthetic(n_references=6, seed=0):
    """Log distances of a pairwise model: mu + a_x + a_y + noise, for unrelated models."""
    rng = np.random.default_rng(seed)
    models = ["v", *[f"r{i}" for i in range(n_references)], "independent", "copy"]
    effects = dict(zip(models, rng.normal(0, 0.2, len(models)), strict=True))
    index = {m: i for i, m in enumerate(models)}
    matrix = np.zeros((len(models), len(models)))
    for a, b in itertools.combinations(models, 2):
        log_d = 0.0 + effects[a] + effects[b] + rng.normal(0, 0.05)
        matrix[index[a], index[b]] = matrix[index[b], index[a]] = np.exp(log_d)
    # the copy is derived from the victim: a tenth of what unrelated models give
    d = np.exp(effects["v"] + effects["copy"]) / 10
    matrix[index["v"], index["copy"]] = matrix[index["copy"], index["v"]] = d
    question = DerivationQuestion(
        "q", "v", ("copy", "independent"), tuple(f"r{i}" for i in range(n_references)), ("zest",)
    )
    return question, matrix, index


def test_a_derived_copy_is_related_and_an_independent_model_is_not():
    question, matrix, index = _synthetic()
    settings = CalibrationSettings(alpha=0.01)
    rows = {
        r["suspect"]: r
        for r in _metric_rows(question, "zest", "cos", True, matrix, index, settings)
    }
    assert rows["copy"]["verdict"] == "related" and rows["copy"]["p_value"] < 1e-3
    assert rows["copy"]["ratio"] == pytest.approx(0.1, rel=0.3)
    assert rows["independent"]["verdict"] == "unrelated"
    assert rows["independent"]["ratio"] == pytest.approx(1.0, rel=0.3)
    assert rows["copy"]["reference_models"] == 6 and rows["copy"]["reference_families"] == 7
    assert rows["copy"]["reference_pairs"] == 21
    # every held-out reference is independent: none called related on this clean null
    assert rows["copy"]["held_out_judged"] == 6 and rows["copy"]["held_out_false_positives"] == 0


def test_too_few_references_give_no_verdict_and_incomparable_pairs_say_so():
    question, matrix, index = _synthetic(n_references=3)
    settings = CalibrationSettings(alpha=0.01)  # min_families 5 > 1 + 3
    rows = _metric_rows(question, "zest", "cos", True, matrix, index, settings)
    assert {r["verdict"] for r in rows} == {"not enough independent models"}
    question, matrix, index = _synthetic()
    matrix[index["v"], index["independent"]] = np.nan  # e.g. weights of another architecture
    rows = {
        r["suspect"]: r
        for r in _metric_rows(question, "weights", "l2", True, matrix, index, settings)
    }
    assert rows["independent"]["verdict"] == NOT_COMPARABLE


def test_the_false_positive_rate_is_alpha_on_unrelated_suspects():
    """Many synthetic questions whose suspect is unrelated: the share called related stays near
    alpha (the verdict's stated error rate)."""
    settings = CalibrationSettings(alpha=0.05)
    related = 0
    trials = 300
    for seed in range(trials):
        question, matrix, index = _synthetic(n_references=6, seed=seed)
        rows = _metric_rows(question, "zest", "cos", True, matrix, index, settings)
        related += sum(r["verdict"] == "related" for r in rows if r["suspect"] == "independent")
    assert related / trials <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / trials)


def test_a_question_without_methods_is_answered_by_every_registered_method(tmp_path):
    from modelkin.signatures import METHODS

    config = _config(tmp_path)
    del config["questions"]["derivation"]["q"]["methods"]
    config = validate_config(config)
    (question,) = derivation_questions(config, _resolve(config))
    assert question.methods == tuple(METHODS)
