"""Derived models and distance tables through Snakemake, on the tiny workflow
(tests/config/tiny.yaml: finetune, prune and a class-subset transfer of digits/lenet/standard/i0-d0;
two zoo seeds, so every reference rests on one pair and the config says warn)."""

from __future__ import annotations

import json
import math

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
COMPARED = [PARENT, OTHER, *DERIVED.values()]


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


@pytest.mark.parametrize("method", ["zest", "gradfield"])
def test_distance_table_covers_every_pair_with_relations(tiny_workflow, method):
    frame = table(tiny_workflow, method)
    assert len(frame) == len(COMPARED) * (len(COMPARED) - 1) // 2
    assert set(frame.model_a) | set(frame.model_b) == set(COMPARED)
    metrics = [d.metric for d in _distances_for(method)]
    for metric in metrics:
        for suffix in (
            "",
            "_normalised",
            "_reference_mean",
            "_reference_std",
            "_reference_n",
            "_verdict",
        ):
            assert f"{metric}{suffix}" in frame.columns
        assert (frame[metric] >= 0).all()
    for name, model in DERIVED.items():
        row = pair(frame, PARENT, model)
        assert row.relation == f"derived-by-{name}" and row.ancestor == PARENT
        assert math.isfinite(
            row[metrics[0]]
        )  # the 5-class transfer is compared after class alignment
    independent = pair(frame, PARENT, OTHER)
    assert independent.relation == "independent" and independent.reference_pair
    assert pair(frame, DERIVED["finetune"], DERIVED["prune"]).relation == "common-ancestor"
    assert pair(frame, DERIVED["finetune"], OTHER).relation == "independent"
    # one independent pair: it is its own reference
    # (normalised exactly 1), with the shortfall warned about
    assert independent[f"{metrics[0]}_reference_n"] == 1
    assert independent[f"{metrics[0]}_normalised"] == pytest.approx(1.0)
    log = (results(tiny_workflow) / "logs" / "distance_table" / f"{method}.log").read_text()
    assert "rests on 1 independently seeded pair(s), fewer than the 5 required" in log
    finetune = pair(frame, PARENT, DERIVED["finetune"])
    assert (
        finetune[f"{metrics[0]}_normalised"] < 0.5
        and finetune[f"{metrics[0]}_verdict"] == "related"
    )


@pytest.mark.parametrize("method", ["zest", "gradfield"])
def test_reference_file_and_heatmap(tiny_workflow, method):
    document = json.loads(
        (results(tiny_workflow) / "distances" / f"{method}_reference.json").read_text()
    )
    assert document["method"] == method
    reference = document["references"]["digits:lenet/standard~lenet/standard"][
        _distances_for(method)[0].metric
    ]
    assert reference["n"] == 1 and reference["sufficient"] is False
    assert reference["pairs"] == [[PARENT, OTHER]]
    probe = results(tiny_workflow) / "probes" / method
    assert document["probe_sha256"]["digits"]  # the probe the reference holds for
    assert probe.exists()
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
    # one positive (parent-finetune), one independent negative (parent-other seed)
    assert (finetune.n_positive, finetune.n_negative) == (1, 1)
    assert finetune.auc == 1.0


@pytest.mark.parametrize("method", ["zest", "gradfield"])
def test_relatedness_roc_curves(tiny_workflow, method):
    from PIL import Image

    with Image.open(results(tiny_workflow) / "relatedness" / f"{method}.png") as image:
        assert image.size[0] > 300 and image.size[1] > 300
