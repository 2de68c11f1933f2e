"""Model ids (one format, parsed in one place, no path escapes) and lineage relations."""

from __future__ import annotations

import pytest

from helpers import REPO
from modelkin.catalog import ModelCatalog
from modelkin.config import load_config, validate_config
from modelkin.distances.plan import distance_models
from modelkin.ids import (
    DerivedId,
    ExternalId,
    ModelIdError,
    ZooId,
    checkpoint_path,
    is_derived_id,
    pair_slug,
    parse_model_id,
)
from modelkin.lineage import Lineage, group_of, relation
from modelkin.signatures.plan import selection_models

ZOO = "digits/lenet/standard/i0-d0"


def test_ids_round_trip_for_every_kind():
    for text in (
        ZOO,
        f"derived/digits/finetune/{ZOO}/s3",
        f"derived/digits/prune/derived/digits/finetune/{ZOO}/s0/s1",
        "external/my-resnet_v2.1",
    ):
        assert str(parse_model_id(text)) == text
    chained = parse_model_id(f"derived/digits/prune/derived/digits/finetune/{ZOO}/s0/s1")
    assert isinstance(chained, DerivedId) and chained.generation == 2
    assert str(chained.root) == ZOO and chained.parent.derivation == "finetune"
    assert parse_model_id(ZOO) == ZooId("digits", "lenet", "standard", 0, 0)
    assert isinstance(parse_model_id("external/x"), ExternalId)
    assert is_derived_id(f"derived/digits/finetune/{ZOO}/s0") and not is_derived_id("P")


@pytest.mark.parametrize(
    "text",
    [
        "digits/../../../../outside/x",
        "/etc/lenet/standard/i0-d0",
        "digits/lenet/standard/i0",
        "digits//standard/i0-d0",
        "derived/digits/finetune/../x/i0-d0/s0",
        "external/../x",
        "digits/lenet/.hidden/i0-d0",
        "digits/lenet/standard/i0-d0/extra",
    ],
)
def test_malformed_ids_and_path_escapes_are_refused(text):
    with pytest.raises(ModelIdError, match="not a model id|not a valid name"):
        parse_model_id(text)


def test_paths_come_from_ids_and_stay_under_results():
    assert checkpoint_path(ZOO, "results") == f"results/models/{ZOO}.safetensors"
    assert pair_slug(ZOO, "digits/lenet/standard/i1-d1") == (
        "digits.lenet.standard.i0-d0~digits.lenet.standard.i1-d1"
    )
    with pytest.raises(ModelIdError):
        checkpoint_path("../../etc/passwd", "results")


def test_the_catalog_refuses_models_the_configuration_does_not_plan():
    config = validate_config({"zoo": {"seeds": [0, 1]}})
    catalog = ModelCatalog(config)
    assert catalog.resolve(ZOO, "x") == ZOO
    with pytest.raises(ModelIdError, match=r"distances.extra_models: .*seeds i7-d7 are not in zoo"):
        catalog.resolve("digits/lenet/standard/i7-d7", "distances.extra_models")
    with pytest.raises(ModelIdError, match="its architecture 'vgg11' is not in zoo.architectures"):
        catalog.resolve("digits/vgg11/standard/i0-d0", "x")
    with pytest.raises(ModelIdError, match="similarity.pairs: 'digits/../../x/i0-d0'"):
        catalog.resolve("digits/../../x/i0-d0", "similarity.pairs")


def lineage(name, **fields):
    return Lineage(name, "lenet", "digits", 10, **fields)


def test_relations_derived_retrained_shared_seed_and_transfer():
    records = {
        "P": lineage("P", algorithm="standard", init_seed=0, data_seed=0),
        "Q": lineage("Q", algorithm="standard", init_seed=1, data_seed=1),
        "M": lineage("M", algorithm="madry", init_seed=0, data_seed=0),
        "F": lineage("F", derivation="finetune", parent="P", init_seed=11, data_seed=12),
        "T": lineage(
            "T", derivation="transfer", parent="P", classes=(5, 6), init_seed=13, data_seed=14
        ),  # fmt: skip
        "R": lineage(
            "R", derivation="retrain_without_class", parent="P", init_seed=15, data_seed=16
        ),  # fmt: skip
        "S": lineage(
            "S", derivation="retrain_without_class", parent="P", init_seed=0, data_seed=17
        ),  # fmt: skip
        "FP": lineage("FP", derivation="prune", parent="F", init_seed=18, data_seed=19),
    }
    expected = {
        ("P", "F"): "derived-by-finetune",
        ("P", "FP"): "derived-by-finetune+prune",
        ("P", "T"): "derived-by-transfer",
        ("P", "R"): "retrained",  # a fresh model on the parent's data: a negative control
        ("P", "S"): "retrained-shared-seed",
        ("F", "R"): "retrained",  # siblings through a retraining share nothing functional
        ("F", "T"): "common-ancestor",
        ("P", "M"): "shared-seed",
        ("P", "Q"): "independent",
        ("F", "Q"): "independent",
    }
    for (a, b), name in expected.items():
        assert relation(records, a, b) == name, (a, b)
        assert relation(records, b, a) == name, (b, a)
    assert group_of("retrained-shared-seed") == "retrained"
    assert group_of("derived-by-finetune+prune") == "derived"


def test_modelgif_selection_models_are_never_compared():
    config = load_config(REPO / "config.yaml")
    catalog = ModelCatalog(config)
    selectors = set(selection_models(config, catalog, "gradfield", "digits"))
    compared = set(distance_models(config, catalog))
    assert len(selectors) == 3 and not selectors & compared
    # nor do they share a seed with a compared model (no shared-seed shortcut either)
    seeds = {parse_model_id(m).init_seed for m in compared if isinstance(parse_model_id(m), ZooId)}
    assert not {parse_model_id(m).init_seed for m in selectors} & seeds


def test_a_model_that_never_predicts_a_class_is_referenced_against_models_of_its_class_set():
    """A model retrained without class 3, or made to forget it, predicts 9 classes: its settings
    pair it with 9-class models, so two such models are not judged against 10-class pairs (on
    which they would look related: they agree on every 3 by construction)."""
    from modelkin.distances.reference import Side
    from modelkin.distances.verdicts import setting_of_lineages

    standard = lineage("P", algorithm="standard", init_seed=0, data_seed=0)
    derived = {"parent": "P", "root_algorithm": "standard", "forget_class": 3}
    retrained = lineage("R", derivation="retrain_without_class", **derived)
    unlearned = lineage("U", derivation="unlearn_relabel", **derived)
    transfer = lineage("T", derivation="transfer", classes=(3, 5, 6), **derived)
    nine = (0, 1, 2, 4, 5, 6, 7, 8, 9)
    assert standard.task_classes is None and retrained.task_classes == nine
    assert unlearned.task_classes == nine and transfer.task_classes == (5, 6)
    assert Side.of_lineage(retrained) == Side("lenet", "standard", nine)
    assert setting_of_lineages(retrained, unlearned).key == (
        "digits:lenet/standard[0,1,2,4,5,6,7,8,9]~lenet/standard[0,1,2,4,5,6,7,8,9]"
    )
    assert setting_of_lineages(standard, unlearned).key == (
        "digits:lenet/standard~lenet/standard[0,1,2,4,5,6,7,8,9]"
    )
    # read from a checkpoint's metadata, as derive writes it
    meta = {**retrained.to_dict(), "forget_class": 3}
    assert Lineage.from_metadata(meta).task_classes == nine
