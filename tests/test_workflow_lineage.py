"""The family-tree stage on the tiny workflow (tests/config/tiny.yaml: finetune, prune and a 5-class
transfer of digits/lenet/standard/i0-d0; the other zoo seed and two reference models unrelated)."""

from __future__ import annotations

import pandas as pd
import pytest

pytestmark = pytest.mark.workflow

PARENT = "digits/lenet/standard/i0-d0"
DERIVED = {name: f"derived/digits/{name}/{PARENT}/s0" for name in ("finetune", "prune", "transfer")}
UNRELATED = [f"digits/lenet/standard/i{s}-d{s}" for s in (1, 2, 3)]


def lineage(workdir, name):
    return pd.read_csv(workdir / "results" / "lineage" / name, keep_default_na=False)


def test_edges_join_only_relatives_and_carry_their_evidence(tiny_workflow):
    edges = lineage(tiny_workflow, "edges.csv")
    assert len(edges) > 0
    assert set(edges.true_relation) <= {"derived-by-finetune", "derived-by-prune",
                                        "derived-by-transfer", "common-ancestor"}  # fmt: skip
    assert (edges.p_value.astype(float) < 0.01).all() and (edges["combine"] == "holm").all()
    for method in ("zest", "gradfield", "weights", "outputs"):
        assert f"{method}_p_value" in edges.columns and f"{method}_normalised" in edges.columns
    pair = edges[
        ((edges.model_a == PARENT) & (edges.model_b == DERIVED["finetune"]))
        | ((edges.model_b == PARENT) & (edges.model_a == DERIVED["finetune"]))
    ]
    assert len(pair) == 1 and pair.iloc[0].evidence != ""
    tree = edges[edges.in_tree.astype(str) == "True"]
    assert set(tree.direction) <= {"decided", "rooted", "ambiguous", "conflict"}
    # the pruned copy hangs under its parent, not under its nearer fine-tuned sibling
    pruned = tree[tree.child == DERIVED["prune"]]
    assert len(pruned) == 1 and pruned.iloc[0].parent == PARENT
    undirected = tree[tree.directed.astype(str) == "False"]
    assert (undirected.parent == "").all() and (undirected.child == "").all()


def test_families_and_scores(tiny_workflow):
    families = lineage(tiny_workflow, "families.csv").set_index("model")
    assert set(families.index) == {PARENT, *DERIVED.values(), *UNRELATED}
    for model in UNRELATED:  # no relative among the compared models
        assert families.loc[model, "family_size"] == 1
    family = families.loc[PARENT, "family"]
    assert families.loc[DERIVED["finetune"], "family"] == family
    assert families.loc[DERIVED["prune"], "true_parent"] == PARENT
    scores = lineage(tiny_workflow, "scores.csv")
    overall = scores[scores.scope == "all"].set_index("metric")
    assert {"ari", "edge_precision", "edge_recall", "parent_accuracy", "direction_accuracy"} <= set(
        overall.index
    )
    assert float(overall.loc["edge_precision", "value"]) == 1.0  # no edge between strangers
    assert float(overall.loc["false_edges", "value"]) == 0
    assert 0 < float(overall.loc["ari", "value"]) <= 1
    assert {"kind:finetune", "kind:prune", "kind:transfer", "generation:1"} <= set(scores.scope)
    png = (tiny_workflow / "results" / "lineage" / "trees.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
