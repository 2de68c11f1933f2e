"""Derived models and distance tables through Snakemake, on the tiny workflow
(tests/config/tiny.yaml: finetune, prune and a class-subset transfer of digits/lenet/standard/i0-d0;
two zoo seeds, so every reference rests on one pair and the config says warn)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from modelkin.checkpoint import read_metadata
from modelkin.data import load_split
from modelkin.io import read_json
from modelkin.signatures import get_method

pytestmark = pytest.mark.workflow


def _distances_for(method):
    return get_method(method).distances


PARENT = "digits/lenet/standard/i0-d0"
OTHER = "digits/lenet/standard/i1-d1"
DERIVED = {name: f"derived/digits/{name}/{PARENT}/s0" for name in ("finetune", "prune", "transfer")}
REFERENCES = ["digits/lenet/standard/i2-d2", "digits/lenet/standard/i3-d3"]
COMPARED = [PARENT, OTHER, *DERIVED.values(), *REFERENCES]
METHODS = ["zest", "gradfield", "weights", "outputs"]  # tests/config/tiny.yaml distances.methods


def results(workdir):
    return workdir / "results"


def table(workdir, method) -> pd.DataFrame:
    return pd.read_csv(results(workdir) / "distances" / f"{method}.csv")


def pair(frame, a, b):
    rows = frame[
        ((frame.model_a == a) & (frame.model_b == b))
        | ((frame.model_a == b) & (frame.model_b == a))
    ]
    assert len(rows) == 1, (a, b)
    return rows.iloc[0]


def test_derived_models_record_their_lineage_and_join_the_zoo(tiny_workflow):
    for name, model in DERIVED.items():
        meta = read_metadata(results(tiny_workflow) / "models" / f"{model}.safetensors")
        assert (meta["parent"], meta["derivation"], meta["algorithm"]) == (PARENT, name, name)
        assert meta["root_algorithm"] == "standard" and meta["name"] == model
    zoo = pd.read_csv(results(tiny_workflow) / "zoo.csv")
    listed = zoo.set_index("model")
    for model in DERIVED.values():
        assert listed.loc[model, "parent"] == PARENT
    assert listed.loc[DERIVED["prune"], "accuracy"] > 0.3


def test_transfer_is_evaluated_on_its_own_classes(tiny_workflow):
    evaluation = read_json(results(tiny_workflow) / "eval" / f"{DERIVED['transfer']}.json")
    test = load_split(results(tiny_workflow) / "data" / "digits.safetensors", "test")
    assert evaluation["test_images"] == int((test.y >= 5).sum())
    assert evaluation["derivation"] == "transfer"
    assert (
        read_metadata(results(tiny_workflow) / "models" / f"{DERIVED['transfer']}.safetensors")[
            "num_classes"
        ]
        == 5
    )


@pytest.mark.parametrize("method", METHODS)
def test_distance_table_covers_every_pair_with_relations_and_verdicts(tiny_workflow, method):
    frame = table(tiny_workflow, method)
    assert len(frame) == len(COMPARED) * (len(COMPARED) - 1) // 2
    assert set(frame.model_a) | set(frame.model_b) == set(COMPARED)
    metrics = [d.metric for d in _distances_for(method)]
    headline = metrics[0]
    for metric in metrics:
        for suffix in (
            "",
            "_normalised",
            "_p_value",
            "_verdict",
            "_reference_mean",
            "_reference_n",
            "_reference_families",
        ):
            assert f"{metric}{suffix}" in frame.columns
    for name, model in DERIVED.items():
        row = pair(frame, PARENT, model)
        assert row.relation == f"derived-by-{name}" and row.ancestor == PARENT
    independent = pair(frame, PARENT, OTHER)
    assert independent.relation == "independent" and independent.reference_pair
    assert pair(frame, DERIVED["finetune"], DERIVED["prune"]).relation == "common-ancestor"
    assert pair(frame, DERIVED["finetune"], OTHER).relation == "independent"
    main = frame[frame.setting == "digits:lenet/standard~lenet/standard"]
    unrelated = main[main.reference_pair]
    # 4 families: the parent's (parent, finetune, prune), the other seed, the two references
    assert len(unrelated) == 3 * 3 + 3 and set(unrelated[f"{headline}_reference_families"]) == {4}
    assert independent[f"{headline}_reference_n"] == len(unrelated) - 1  # itself left out
    finetune = pair(frame, PARENT, DERIVED["finetune"])
    if method != "outputs":  # the parent and its copy predict alike, but so do weak models
        assert finetune[f"{headline}_verdict"] == "related"
        assert finetune[f"{headline}_p_value"] < 0.01 and finetune[f"{headline}_normalised"] < 0.5
    # the 5-class transfer is judged in a setting of its own, matched to its classes
    transfer = pair(frame, PARENT, DERIVED["transfer"])
    assert transfer.setting == "digits:lenet/standard~lenet/standard[5,6,7,8,9]"
    verdicts = set(frame[f"{headline}_verdict"])
    assert verdicts <= {"related", "unrelated", "not enough independent models"}


@pytest.mark.parametrize("method", ["zest", "gradfield"])
def test_reference_file_and_heatmap(tiny_workflow, method):
    document = json.loads(
        (results(tiny_workflow) / "distances" / f"{method}_reference.json").read_text()
    )
    assert document["method"] == method and document["calibration"]["min_families"] == 4
    reference = document["references"]["digits:lenet/standard~lenet/standard"][
        _distances_for(method)[0].metric
    ]
    assert reference["n"] == 12 and reference["families"] == 4 and reference["sufficient"]
    assert reference["null"]["model"] == "ranked" and reference["null"]["df"] >= 1
    assert len(reference["null"]["pair_statistics"]) == reference["null"]["n_pairs"]
    assert [PARENT, OTHER] in reference["pairs"] or [OTHER, PARENT] in reference["pairs"]
    assert set(document["models"]) == set(COMPARED)
    folder = results(tiny_workflow) / "distances"
    for info in document["models"].values():
        assert (folder / info["signature"]).exists()  # relative to the reference file
    assert (folder / document["probe_paths"]["digits"]).exists()
    png = (results(tiny_workflow) / "distances" / f"{method}.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


@pytest.mark.parametrize("method", ["zest", "gradfield"])
def test_relatedness_table(tiny_workflow, method):
    frame = pd.read_csv(results(tiny_workflow) / "relatedness" / f"{method}.csv")
    assert set(frame.derivation) == {"finetune", "prune", "transfer"}
    assert set(frame.metric) == {d.metric for d in _distances_for(method)}
    finetune = frame[
        (frame.derivation == "finetune") & (frame.metric == _distances_for(method)[0].metric)
    ].iloc[0]
    # one positive (parent-finetune); negatives: the unrelated pairs of the parent (i1, i2, i3)
    assert (finetune.n_positive, finetune.n_negative) == (1, 3)
    assert finetune.auc == 1.0 and finetune.tpr_at_alpha == 1.0 and finetune.alpha == 0.01
    assert 0 <= finetune.fpr_at_alpha <= 1


def test_gradfield_k_sweep(tiny_workflow):
    frame = pd.read_csv(results(tiny_workflow) / "relatedness" / "gradfield_k_sweep.csv")
    assert set(frame.k) == {4, 8} and "finetune" in set(frame.derivation)
    assert ((frame.auc >= 0) & (frame.auc <= 1)).all()


@pytest.mark.parametrize("method", ["zest", "gradfield"])
def test_relatedness_roc_curves(tiny_workflow, method):
    from PIL import Image

    with Image.open(results(tiny_workflow) / "relatedness" / f"{method}.png") as image:
        assert image.size[0] > 300 and image.size[1] > 300
