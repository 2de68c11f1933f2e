"""Derived models: each kind records its lineage and behaves as its derivation says."""

from __future__ import annotations

import pytest
import torch

from modelkin.checkpoint import load_checkpoint, read_metadata
from modelkin.data import load_split, relabel_classes, without_class
from modelkin.derive import KINDS, DerivationError, resolve_settings, student_seeds
from modelkin.derive.builders import prunable_weights, relabel_class_at_random, transfer_model
from modelkin.derive.run import derive_checkpoint, derived_recipe
from modelkin.errors import InputError
from modelkin.evaluate import evaluate_checkpoint
from modelkin.evaluate import predict as query_parent
from modelkin.ids import DerivedId, parse_model_id
from modelkin.io import read_json
from modelkin.train import train_checkpoint

PARENT_ID = "digits/mlp/standard/i0-d0"
PARENT_RECIPE = {
    "optimizer": "adam",
    "lr": 0.003,
    "epochs": 4,
    "batch_size": 32,
    "train_limit": 500,
}
QUICK = {"epochs": 2}


@pytest.fixture(scope="module")
def parent(digits_file, tmp_path_factory):
    path = tmp_path_factory.mktemp("parent") / "parent.safetensors"
    train_checkpoint(
        path,
        prepared=digits_file,
        arch="mlp",
        algorithm="standard",
        recipe=PARENT_RECIPE,
        init_seed=0,
        data_seed=0,
        extra_meta={"name": PARENT_ID},
    )
    return path


@pytest.fixture(scope="module")
def test_split(digits_file):
    return load_split(digits_file, "test")


def derived_model_id(dataset, derivation, parent, seed):
    return str(DerivedId(dataset, derivation, parse_model_id(parent), seed))


def measured(tmp_path, child, digits_file):
    """The evaluate stage's record of a derived checkpoint (clean accuracy only)."""
    return evaluate_checkpoint(
        child.path, digits_file, tmp_path / "eval.json", device="cpu", steps=0
    )


def derive(tmp_path, parent, digits_file, name, settings, seed=0):
    model_id = derived_model_id("digits", name, PARENT_ID, seed)
    out = tmp_path / f"{name}.safetensors"
    derive_checkpoint(
        out,
        parent=parent,
        prepared=digits_file,
        settings=settings,
        model_id=model_id,
        parent_id=PARENT_ID,
        derivation=name,
        device="cpu",
    )
    return load_checkpoint(out)


def predictions(model, split):
    return query_parent(model, split.x, device="cpu", probabilities=False)


# ---------------------------------------------------------------------------------------------
# Ids, seeds and settings


def test_ids_round_trip_and_students_get_their_own_seeds():
    model_id = derived_model_id("digits", "finetune", PARENT_ID, 3)
    assert model_id == "derived/digits/finetune/digits/mlp/standard/i0-d0/s3"
    parsed = parse_model_id(model_id)
    assert (parsed.dataset, parsed.derivation, str(parsed.parent), parsed.seed) == (
        "digits",
        "finetune",
        PARENT_ID,
        3,
    )
    chained = derived_model_id("digits", "prune", model_id, 0)
    assert str(parse_model_id(chained).parent) == model_id
    seeds = {
        student_seeds(derived_model_id("digits", k, p, s))
        for k in KINDS
        for p in (PARENT_ID, "digits/lenet/standard/i1-d1")
        for s in (0, 1)
    }
    assert len(seeds) == len(KINDS) * 4  # no two students share initial weights or batch order
    assert student_seeds(model_id) == student_seeds(model_id)
    assert all(
        init > 1000 and data > 1000 for init, data in seeds
    )  # clear of the zoo's small seeds


def test_settings_are_checked_per_kind():
    assert resolve_settings({"kind": "prune"})["sparsity"] == 0.5
    with pytest.raises(DerivationError, match="do not apply to a finetune"):
        resolve_settings({"kind": "finetune", "sparsity": 0.3})
    with pytest.raises(DerivationError, match="needs 'forget_class'"):
        resolve_settings({"kind": "unlearn_relabel"})
    with pytest.raises(DerivationError, match="sparsity must be in"):
        resolve_settings({"kind": "prune", "sparsity": 1.0})
    with pytest.raises(DerivationError, match="needs 'classes'"):
        resolve_settings({"kind": "transfer"})
    with pytest.raises(DerivationError, match="unknown derivation kind 'copy'"):
        resolve_settings({"kind": "copy"})
    # parents/seeds say which models to derive, not how: they never reach the recipe or the metadata
    assert "seeds" not in resolve_settings({"kind": "finetune", "seeds": [0, 1]})


def test_recipe_starts_from_the_parents():
    parent_meta = {"recipe": {"optimizer": "sgd", "lr": 0.02, "epochs": 12, "adversary": "madry"}}
    finetune = derived_recipe(parent_meta, resolve_settings({"kind": "finetune"}))
    assert (finetune.lr, finetune.epochs, finetune.adversary) == (pytest.approx(0.002), 3, "madry")
    extract = derived_recipe(
        parent_meta, resolve_settings({"kind": "extract_labels", "recipe": {"epochs": 5}})
    )
    assert (extract.lr, extract.epochs, extract.adversary) == (0.02, 5, "none")


# ---------------------------------------------------------------------------------------------
# Data transformations


def test_class_subsets_and_relabelling(test_split):
    subset = relabel_classes(test_split, [5, 6, 7, 8, 9])
    assert set(subset.y.tolist()) == {0, 1, 2, 3, 4}
    assert len(subset) == int((test_split.y >= 5).sum())
    assert torch.equal(subset.y, test_split.y[test_split.y >= 5] - 5)
    without = without_class(test_split, 3)
    assert 3 not in without.y.tolist() and len(without) == int((test_split.y != 3).sum())
    relabelled = relabel_class_at_random(test_split, 3, 10, seed=0)
    changed = relabelled.y != test_split.y
    assert torch.equal(changed, test_split.y == 3)  # every class-3 label changes, nothing else does
    assert 3 not in relabelled.y.tolist()
    assert len(set(relabelled.y[test_split.y == 3].tolist())) >= 5  # spread over the other classes
    with pytest.raises(InputError, match="have no images"):
        relabel_classes(test_split, [5, 12])


# ---------------------------------------------------------------------------------------------
# The kinds


def test_finetune_stays_close_and_records_its_lineage(tmp_path, parent, digits_file, test_split):
    parent_ckpt = load_checkpoint(parent)
    child = derive(tmp_path, parent, digits_file, "finetune", {"kind": "finetune", "recipe": QUICK})
    meta = child.meta
    assert meta["parent"] == PARENT_ID and meta["parent_sha256"] == parent_ckpt.sha256
    assert (meta["derivation"], meta["algorithm"]) == ("finetune", "finetune")
    assert (meta["root"], meta["root_algorithm"]) == (PARENT_ID, "standard")
    assert meta["recipe"]["lr"] == pytest.approx(0.0003) and meta["epochs"] == 2
    assert meta["name"] == derived_model_id("digits", "finetune", PARENT_ID, 0)
    before = torch.cat([p.detach().flatten() for p in parent_ckpt.model.parameters()])
    after = torch.cat([p.detach().flatten() for p in child.model.parameters()])
    relative_change = float((after - before).norm() / before.norm())
    assert 0 < relative_change < 0.2
    agreement = float(
        (predictions(child.model, test_split) == predictions(parent_ckpt.model, test_split))
        .float()
        .mean()
    )
    assert agreement > 0.9


def test_prune_has_exactly_the_configured_sparsity_with_the_mask_fixed(
    tmp_path, parent, digits_file
):
    parent_model = load_checkpoint(parent).model
    child = derive(
        tmp_path, parent, digits_file, "prune", {"kind": "prune", "sparsity": 0.6, "recipe": QUICK}
    )
    weights = [getattr(m, n).detach().flatten() for m, n in prunable_weights(child.model)]
    total = sum(w.numel() for w in weights)
    zeros = sum(int((w == 0).sum()) for w in weights)
    assert zeros == round(0.6 * total)  # still exact after the fine-tune: the mask stayed fixed
    assert child.meta["sparsity"] == pytest.approx(zeros / total)
    # global magnitude: the zeros are where the parent's
    # weights were smallest in |w|, over all layers
    parent_weights = torch.cat(
        [getattr(m, n).detach().flatten().abs() for m, n in prunable_weights(parent_model)]
    )
    pruned = torch.cat(weights) == 0
    assert float(parent_weights[pruned].max()) <= float(parent_weights[~pruned].min())
    assert set(child.model.state_dict()) == set(parent_model.state_dict())  # a plain state dict
    assert torch.equal(
        child.model.fc1.bias == 0, torch.zeros_like(child.model.fc1.bias, dtype=torch.bool)
    )
    assert child.meta["epochs"] == 2 and measured(tmp_path, child, digits_file)["accuracy"] > 0.5


def test_extraction_students_learn_the_parents_answers(tmp_path, parent, digits_file, test_split):
    parent_model = load_checkpoint(parent).model
    parent_answers = predictions(parent_model, test_split)
    for kind, extra in (
        ("extract_labels", {"arch": "lenet"}),
        ("extract_probs", {"temperature": 2.0}),
    ):
        settings = {
            "kind": kind,
            "recipe": {"epochs": 3, "optimizer": "adam", "lr": 0.003, "train_limit": 300},
            **extra,
        }
        student = derive(tmp_path, parent, digits_file, kind, settings)
        assert student.meta["derivation"] == kind and student.meta["parent"] == PARENT_ID
        assert student.meta["arch"] == extra.get("arch", "mlp")
        assert student.meta["init_seed"] == student_seeds(student.meta["name"])[0]
        assert student.meta["queries"] == {"split": "train", "n": 300, "mixup_copies": 0}
        agreement = float((predictions(student.model, test_split) == parent_answers).float().mean())
        assert agreement > 0.6, kind
    soft = query_parent(
        parent_model, test_split.x[:50], device="cpu", probabilities=True, temperature=2.0
    )
    sharp = query_parent(
        parent_model, test_split.x[:50], device="cpu", probabilities=True, temperature=1.0
    )
    assert torch.allclose(soft.sum(1), torch.ones(50))
    assert float(soft.max(1).values.mean()) < float(
        sharp.max(1).values.mean()
    )  # temperature softens


def test_transfer_keeps_the_features_and_learns_a_new_head(tmp_path, parent, digits_file):
    parent_state = load_checkpoint(parent).model.state_dict()
    settings = {
        "kind": "transfer",
        "classes": [5, 6, 7, 8, 9],
        "train_head_only": True,
        "recipe": {"epochs": 3, "lr": 0.01},
    }
    child = derive(tmp_path, parent, digits_file, "transfer", settings)
    assert child.meta["num_classes"] == 5 and child.meta["classes"] == [5, 6, 7, 8, 9]
    assert child.meta["head"] == "fc3" and child.model.fc3.out_features == 5
    for key, value in child.model.state_dict().items():
        if not key.startswith("fc3."):
            assert torch.equal(value, parent_state[key]), key
    result = evaluate_checkpoint(
        child.path, digits_file, tmp_path / "eval.json", device="cpu", steps=2, max_robust_images=20
    )
    assert result["accuracy"] > 0.8  # on the relabelled 5-class test subset
    assert result["test_images"] == 597 - int((load_split(digits_file, "test").y < 5).sum())
    assert read_json(tmp_path / "eval.json")["derivation"] == "transfer"


def test_transfer_to_another_data_set_keeps_the_parents_normalisation():
    from modelkin.datasets import DATASETS
    from modelkin.models import Normalisation, normalisation_of, seeded_model

    meta = {"arch": "lenet", "dataset": "cifar10", "num_classes": 10}
    parent_model = seeded_model("lenet", "cifar10", 0).eval()
    model, head = transfer_model(parent_model, meta, "svhn", 10, init_seed=1)
    assert normalisation_of(model) == Normalisation.of_dataset(DATASETS["cifar10"])
    assert normalisation_of(model) != Normalisation.of_dataset(DATASETS["svhn"])
    # with the parent's head put back, it is the parent: same inputs, same features, same logits
    model.get_submodule(head).load_state_dict(parent_model.get_submodule(head).state_dict())
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), parent_model(x))
    custom = Normalisation.none()
    plain_parent = seeded_model("lenet", "cifar10", 0, normalisation=custom)
    model, _ = transfer_model(plain_parent, meta, "svhn", 4, init_seed=1)
    assert normalisation_of(model) == custom and head == "fc3"


def test_retrain_without_class_never_learns_that_class(tmp_path, parent, digits_file, test_split):
    settings = {"kind": "retrain_without_class", "forget_class": 3}
    child = derive(tmp_path, parent, digits_file, "retrain_without_class", settings)
    assert child.meta["forget_class"] == 3 and child.meta["epochs"] == PARENT_RECIPE["epochs"]
    result = measured(tmp_path, child, digits_file)
    assert result["forget_class_predicted_fraction"] < 0.01
    assert result["forget_accuracy"] < 0.05 and result["retain_accuracy"] > 0.8
    parent_ckpt = load_checkpoint(parent)
    assert float((predictions(parent_ckpt.model, test_split) == 3).float().mean()) > 0.05


def test_unlearn_relabel_changes_that_classs_predictions(tmp_path, parent, digits_file, test_split):
    parent_model = load_checkpoint(parent).model
    forget = test_split.y == 3
    before = float((predictions(parent_model, test_split)[forget] == 3).float().mean())
    settings = {"kind": "unlearn_relabel", "forget_class": 3, "recipe": {"epochs": 3}}
    child = derive(tmp_path, parent, digits_file, "unlearn_relabel", settings)
    result = measured(tmp_path, child, digits_file)
    assert before > 0.6 and result["forget_accuracy"] < before / 3
    assert result["retain_accuracy"] > 0.8


def test_unlearn_ascent_forgets_that_class_and_keeps_the_rest(
    tmp_path, parent, digits_file, test_split
):
    from modelkin.derive.builders import ascent_criterion

    logits = torch.tensor([[5.0, 0.0, 0.0], [5.0, 0.0, 0.0], [0.0, 0.0, 9.0]])
    y = torch.tensor([0, 2, 0])  # class 0 forgotten; the third is forgotten beyond the bound
    loss = ascent_criterion(0, bound=1.0)(logits, y)
    ce = torch.nn.functional.cross_entropy(logits, y, reduction="none")
    assert loss == pytest.approx(float((-ce[0] + ce[1] - 1.0) / 3))
    assert resolve_settings({"kind": "unlearn_ascent", "forget_class": 3})["retain"] is True
    settings = {"kind": "unlearn_ascent", "forget_class": 3, "recipe": {"epochs": 3}}
    child = derive(tmp_path, parent, digits_file, "unlearn_ascent", settings)
    assert child.meta["forget_class"] == 3 and child.meta["ascent"]["retain"] is True
    result = measured(tmp_path, child, digits_file)
    assert result["forget_accuracy"] < 0.2 and result["retain_accuracy"] > 0.85
    alone = derive(
        tmp_path, parent, digits_file, "unlearn_ascent", {**settings, "retain": False}, seed=1
    )
    result = measured(tmp_path, alone, digits_file)
    assert result["forget_accuracy"] < 0.2 and result["retain_accuracy"] > 0.6


def test_derive_checkpoint_is_loadable_and_evaluable(tmp_path, parent, digits_file):
    child = derive(
        tmp_path, parent, digits_file, "finetune", {"kind": "finetune", "recipe": {"epochs": 1}}
    )
    assert read_metadata(child.path)["derivation"] == "finetune"
    result = evaluate_checkpoint(
        child.path, digits_file, tmp_path / "e.json", device="cpu", steps=1, max_robust_images=10
    )
    assert result["parent"] == PARENT_ID and result["test_images"] == 597
    assert result["derivation"] == "finetune" and 0 <= result["accuracy"] <= 1


def test_mismatched_data_and_classes_are_refused(tmp_path, parent, digits_file):
    with pytest.raises(DerivationError, match="not a class of the parent"):
        derive(
            tmp_path,
            parent,
            digits_file,
            "retrain_without_class",
            {"kind": "retrain_without_class", "forget_class": 10},
        )
    with pytest.raises(
        DerivationError, match="holds digits, but this transfer derivation trains on cifar10"
    ):
        derive(
            tmp_path, parent, digits_file, "transfer", {"kind": "transfer", "dataset": "cifar10"}
        )
    ckpt = load_checkpoint(parent)
    with pytest.raises(DerivationError, match="cannot transfer a digits model"):
        transfer_model(ckpt.model, ckpt.meta, "cifar10", 10, init_seed=0)


# ---------------------------------------------------------------------------------------------
# Planning from the configuration


def test_parents_and_plan_from_config():
    from modelkin.config import ConfigError, validate_config
    from modelkin.derive.plan import planned_derivations, resolve_parents

    config = validate_config(
        {
            "zoo": {"seeds": [0, 1, {"init": 2, "data": 5}]},
            "derived": {
                "parents": [{"dataset": "digits", "arch": "lenet", "seeds": "all"}],
                "seeds": [0, 1],
                "derivations": {
                    "finetune": {"kind": "finetune"},
                    "student": {
                        "kind": "extract_probs",
                        "arch": "mlp",
                        "parents": ["digits/lenet/standard/i0-d0"],
                        "seeds": [7],
                    },
                    "pruned_copy": {
                        "kind": "prune",
                        "parents": ["derived/digits/finetune/digits/lenet/standard/i1-d1/s0"],
                    },
                },
            },
        }
    )
    assert resolve_parents(config["derived"]["parents"], config) == [
        "digits/lenet/standard/i0-d0",
        "digits/lenet/standard/i1-d1",
        "digits/lenet/standard/i2-d5",
    ]
    assert resolve_parents(
        [{"dataset": "digits", "arch": "mlp", "algorithm": "madry", "seed": 3}], config
    ) == ["digits/mlp/madry/i3-d3"]
    plan = planned_derivations(config)
    ids = [p.model_id for p in plan]
    assert len(ids) == 3 * 2 + 1 + 2 and len(set(ids)) == len(
        ids
    )  # pruned_copy takes both default seeds
    student = next(p for p in plan if p.derivation == "student")
    assert student.model_id == "derived/digits/student/digits/lenet/standard/i0-d0/s7"
    assert student.profile == ("digits", "mlp", "standard")
    chained = next(p for p in plan if p.derivation == "pruned_copy")
    assert chained.parent == "derived/digits/finetune/digits/lenet/standard/i1-d1/s0"
    assert chained.profile == ("digits", "lenet", "standard")
    with pytest.raises(DerivationError, match="which no earlier derivation produces"):
        planned_derivations(
            {
                **config,
                "derived": {
                    **config["derived"],
                    "derivations": {
                        "pruned_copy": {
                            "kind": "prune",
                            "parents": ["derived/digits/finetune/digits/lenet/standard/i1-d1/s0"],
                        }
                    },
                },
            }
        )
    with pytest.raises(DerivationError, match="both 'seed' and 'seeds'"):
        resolve_parents([{"dataset": "digits", "arch": "mlp", "seed": 1, "seeds": [2]}], config)
    with pytest.raises(ConfigError, match="derived.derivations.bad.kind"):
        validate_config({"derived": {"derivations": {"bad": {"kind": "copy"}}}})
    with pytest.raises(ConfigError, match="allowed keys"):
        validate_config({"distances": {"treshold": 0.5}})
