"""Family trees (modelkin.kinship) on synthetic distance and p-value matrices with a known tree."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from modelkin.kinship import (
    KinshipError,
    KinshipSettings,
    ModelStatistics,
    combine_p_values,
    cosine_at,
    kinship_graph,
    mask_agreement,
    plot_family_trees,
    recover_lineage,
    true_lineage,
    weight_statistics,
)
from modelkin.kinship.direction import cue_votes
from modelkin.lineage import Lineage

METHODS = ["zest", "weights"]
FULL = frozenset(range(10))
SHAPES = (("fc.weight", (10, 4)),)

# The known tree: R -> A (fine-tuned), R -> B (pruned), R -> C (5-class transfer), A -> A1 (a
# fine-tuned copy of the fine-tuned copy); X and Y are unrelated to everything.
TREE = {"A": ("R", 0.10, "finetune"), "B": ("R", 0.12, "prune"), "C": ("R", 0.15, "transfer"),
        "A1": ("A", 0.08, "finetune")}  # fmt: skip
MODELS = ["R", "A", "B", "C", "A1", "X", "Y"]


def tree_distance(a: str, b: str) -> float:
    def path(m):
        out = [m]
        while out[-1] in TREE:
            out.append(TREE[out[-1]][0])
        return out

    pa, pb = path(a), path(b)
    common = next(m for m in pa if m in pb)
    length = 0.0
    for p in (pa, pb):
        for m in p[: p.index(common)]:
            length += TREE[m][1]
    return length


def synthetic_pairs(
    models=MODELS, family=("R", "A", "B", "C", "A1"), noise=0.0, seed=0, distance=tree_distance
):
    rng = np.random.default_rng(seed)
    rows = []
    for a, b in itertools.combinations(sorted(models), 2):
        related = a in family and b in family
        row = {"model_a": a, "model_b": b, "setting": "s"}
        for method in METHODS:
            if related:
                d = distance(a, b) * (1 + noise * rng.standard_normal())
                p = 1e-6
            else:
                d, p = 1.0 + 0.1 * rng.standard_normal(), float(rng.uniform(0.05, 1))
            row[f"{method}_normalised"], row[f"{method}_p_value"] = d, p
        rows.append(row)
    return pd.DataFrame(rows)


def synthetic_stats():
    kurt = {"R": -2.0, "A": -1.5, "A1": -1.0, "B": -1.1, "X": -2.1, "Y": -1.9}
    out = {m: ModelStatistics(FULL, SHAPES, 0.0, k) for m, k in kurt.items()}
    out["B"] = ModelStatistics(FULL, SHAPES, 0.5, -1.1)
    out["C"] = ModelStatistics(frozenset(range(5, 10)), (("fc.weight", (5, 4)),), 0.0, -1.8)
    return out


def synthetic_lineages():
    out = {m: Lineage(m, "lenet", "digits", 10) for m in ("R", "X", "Y")}
    for child, (parent, _, kind) in TREE.items():
        classes = (5, 6, 7, 8, 9) if child == "C" else None
        out[child] = Lineage(child, "lenet", "digits", 5 if classes else 10, classes=classes,
                             parent=parent, derivation=kind)  # fmt: skip
    return out


def test_the_known_tree_is_recovered_with_its_directions():
    result = recover_lineage(
        synthetic_pairs(), METHODS, stats=synthetic_stats(), lineages=synthetic_lineages()
    )
    families = result.families.set_index("model")
    assert len(set(families.loc[["R", "A", "B", "C", "A1"], "family"])) == 1
    assert families.loc["X", "family"] != families.loc["Y", "family"] != families.loc["R", "family"]
    for child, (parent, _, _) in TREE.items():
        assert families.loc[child, "parent"] == parent, child
    assert families.loc["R", "root"] and families.loc["R", "parent"] == ""
    tree = result.edges[result.edges.in_tree]
    assert len(tree) == 4 and tree.directed.all()
    # every pair of the family is related (siblings and the grandchild too), the tree is 4 of them
    assert len(result.edges) == 10 and result.edges.true_relation.str.len().gt(0).all()
    for metric in ("ari", "edge_precision", "edge_recall", "tree_edge_precision",
                   "parent_accuracy", "direction_accuracy"):  # fmt: skip
        assert result.score(metric) == 1.0, metric
    assert result.score("parent_accuracy", "generation:2") == 1.0
    assert result.score("parent_accuracy", "kind:prune") == 1.0
    pruned = tree[tree.child == "B"].iloc[0]
    assert "sparsity:+1.00" in pruned.direction_evidence
    assert "task:+1.00" in tree[tree.child == "C"].iloc[0].direction_evidence


def test_the_tree_survives_noisy_distances():
    result = recover_lineage(
        synthetic_pairs(noise=0.1, seed=3), METHODS, stats=synthetic_stats(),
        lineages=synthetic_lineages(),
    )  # fmt: skip
    assert result.score("ari") == 1.0 and result.score("tree_edge_recall") == 1.0


def test_an_ambiguous_direction_stays_undirected():
    # two models, nothing orders them: the same statistics, and centrality ties in a pair
    pairs = synthetic_pairs(["P", "Q", "X"], ("P", "Q"), distance=lambda a, b: 0.1)
    same = ModelStatistics(FULL, SHAPES, 0.0, -1.5)
    result = recover_lineage(pairs, METHODS, stats={m: same for m in "PQX"})
    edge = result.edges.iloc[0]
    assert len(result.edges) == 1 and edge.in_tree and not edge.directed
    assert edge.direction == "ambiguous" and edge.parent == edge.child == ""
    assert (result.families.parent == "").all()
    # without any statistics every cue but centrality abstains, and centrality ties
    assert not recover_lineage(pairs, METHODS).edges.iloc[0].directed


def test_evidence_against_the_tree_is_a_conflict_not_a_direction():
    # the pruned model would be the parent if the tree followed kurtosis alone
    pairs = synthetic_pairs(["P", "Q"], ("P", "Q"), distance=lambda a, b: 0.1)
    stats = {
        "P": ModelStatistics(FULL, SHAPES, 0.5, -2.0),
        "Q": ModelStatistics(FULL, SHAPES, 0.0, -1.0),
    }
    settings = KinshipSettings.from_dict(
        {"direction": {"weights": {"sparsity": 1.0, "kurtosis": 1.0}, "min_confidence": 0.5}}
    )
    edge = recover_lineage(pairs, METHODS, stats=stats, settings=settings).edges.iloc[0]
    assert edge.in_tree and not edge.directed and edge.direction in {"ambiguous", "conflict"}


def point_pairs(points: dict[str, np.ndarray], family: set[str], noise=None) -> pd.DataFrame:
    """Pairs of models placed as points: the weight of a pair is their squared distance (like
    1 - cos, which grows with the square of a small angle), every pair of ``family`` related."""
    rows = []
    for a, b in itertools.combinations(sorted(points), 2):
        d = float(np.sum((points[a] - points[b]) ** 2))
        related = a in family and b in family
        row = {"model_a": a, "model_b": b, "setting": "s"}
        for method in METHODS:
            row[f"{method}_normalised"] = d if related else 1.0
            row[f"{method}_p_value"] = 1e-6 if related else 0.5
        rows.append(row)
    return pd.DataFrame(rows)


def test_siblings_nearer_each_other_than_their_parent_hang_under_it():
    # R's two fine-tuned copies S1, S2 moved the same way (1.0 along e0) and then apart (0.3
    # each); G is a fine-tuned copy of S1 (a further 0.2)
    e = np.eye(5)
    points = {"R": 0 * e[0], "S1": e[0] + 0.3 * e[1], "S2": e[0] + 0.3 * e[2]}
    points["G"] = points["S1"] + 0.2 * e[3]
    pairs = point_pairs(points, set(points))
    weight = {frozenset((a, b)): a_b for a, b, a_b in
              zip(pairs.model_a, pairs.model_b, pairs.zest_normalised, strict=True)}  # fmt: skip
    # the test can fail: each sibling's nearest relative is the other sibling, not the parent
    assert weight[frozenset(("S1", "S2"))] < weight[frozenset(("R", "S2"))]
    kurtosis = {"R": -2.0, "S1": -1.5, "S2": -1.5, "G": -1.45}
    stats = {m: ModelStatistics(FULL, SHAPES, 0.0, k) for m, k in kurtosis.items()}
    families = recover_lineage(pairs, METHODS, stats=stats).families.set_index("model")
    assert families.loc["S1", "parent"] == "R" and families.loc["S2", "parent"] == "R"
    assert families.loc["G", "parent"] == "S1" and families.loc["R", "root"]


def pruned(weights: np.ndarray, fraction: float) -> np.ndarray:
    cut = np.quantile(np.abs(weights), fraction)
    return np.where(np.abs(weights) <= cut, 0.0, weights)


def test_mask_agreement():
    rng = np.random.default_rng(0)
    parent = {"a.weight": rng.normal(size=(40, 30)), "b.weight": rng.normal(size=(20, 10)),
              "b.bias": rng.normal(size=10)}  # fmt: skip
    child = {k: pruned(v, 0.5) if v.ndim >= 2 else v for k, v in parent.items()}
    assert mask_agreement(parent, child) == 1.0
    # per-tensor pruning of a fine-tuned copy: its zeros are its own smallest weights
    moved = {k: v + rng.normal(scale=0.05, size=v.shape) for k, v in parent.items()}
    assert 0.9 < mask_agreement(moved, child) < 1.0
    unrelated = {k: rng.normal(size=v.shape) for k, v in parent.items()}
    assert mask_agreement(unrelated, child) == pytest.approx(0.5, abs=0.1)  # the density
    assert math.isnan(mask_agreement(parent, parent))  # no zeros
    assert math.isnan(mask_agreement({"a.weight": np.ones((3, 3))}, child))


def test_a_pruned_model_hangs_under_the_model_whose_smallest_weights_are_its_zeros():
    # B was pruned from R, then trained on the way R's fine-tuned copy F was: in behaviour F lies
    # on the way from R to B, nearer B than R is (as on the default configuration)
    rng = np.random.default_rng(1)
    r = rng.normal(size=(40, 30))
    drift = rng.normal(scale=0.1, size=r.shape)
    b = np.where(pruned(r, 0.5) == 0, 0.0, r + drift)
    states = {m: {"fc.weight": w} for m, w in (("R", r), ("F", r + drift), ("B", b))}
    distance = {frozenset(("R", "F")): 0.1, frozenset(("R", "B")): 0.3, frozenset(("F", "B")): 0.2}
    pairs = synthetic_pairs(
        ["R", "F", "B"], ("R", "F", "B"), distance=lambda a, c: distance[frozenset((a, c))]
    )
    shapes = (("fc.weight", r.shape),)
    stats = {m: ModelStatistics(FULL, shapes, *weight_statistics(states[m])) for m in states}
    with_mask = recover_lineage(pairs, METHODS, stats=stats, read_weights=states.__getitem__)
    assert with_mask.families.set_index("model").loc["B", "parent"] == "R"
    # without the weights the mask cannot speak, and the nearer fine-tuned copy wins
    without = recover_lineage(pairs, METHODS, stats=stats)
    assert without.families.set_index("model").loc["B", "parent"] == "F"


def test_a_pruned_model_nearer_the_root_than_its_parent_still_hangs_under_its_parent():
    # S is R's student (weights unrelated to R's); V was pruned from S, then trained on R's task
    # and moved back towards R: V is nearer R than S is, so S is not on the way from R to V (as
    # the default run's pruned student), but V's zeros are S's smallest weights
    rng = np.random.default_rng(2)
    r, s = rng.normal(size=(40, 30)), rng.normal(size=(40, 30))
    v = np.where(pruned(s, 0.5) == 0, 0.0, s + rng.normal(scale=0.1, size=s.shape))
    states = {m: {"fc.weight": w} for m, w in (("R", r), ("S", s), ("V", v))}
    distance = {
        frozenset(("R", "S")): 0.44,
        frozenset(("R", "V")): 0.43,
        frozenset(("S", "V")): 0.03,
    }
    pairs = synthetic_pairs(
        ["R", "S", "V"], ("R", "S", "V"), distance=lambda a, c: distance[frozenset((a, c))]
    )
    shapes = (("fc.weight", r.shape),)
    stats = {
        "R": ModelStatistics(FULL, shapes, 0.0, -2.0),
        "S": ModelStatistics(FULL, shapes, 0.0, -1.5),
        "V": ModelStatistics(FULL, shapes, 0.5, -1.0),
    }
    assert mask_agreement(states["S"], states["V"]) == 1.0
    assert mask_agreement(states["R"], states["V"]) < 0.6
    families = recover_lineage(pairs, METHODS, stats=stats, read_weights=states.__getitem__)
    by_model = families.families.set_index("model")
    assert by_model.loc["V", "parent"] == "S" and by_model.loc["S", "parent"] == "R"
    # without the weights the tree takes the root, which V is nearer than S is
    without = recover_lineage(pairs, METHODS, stats=stats).families.set_index("model")
    assert without.loc["V", "parent"] == "R"


def test_cosine_at_a_point_of_known_triangles():
    origin = {"w": np.zeros((2, 2)), "b": np.zeros(3)}
    ahead = {"w": np.ones((2, 2)), "b": np.zeros(3)}
    behind = {"w": -np.ones((2, 2)), "b": np.zeros(3)}
    aside = {"w": np.array([[1.0, -1.0], [1.0, -1.0]]), "b": np.zeros(3)}
    assert cosine_at(origin, behind, ahead) == pytest.approx(-1.0)  # on a straight line
    assert cosine_at(origin, ahead, ahead) == pytest.approx(1.0)
    assert cosine_at(origin, ahead, aside) == pytest.approx(0.0)
    # a tensor of another shape (a transfer's head) is left out, not compared
    assert cosine_at(origin, behind, {**ahead, "b": np.ones(5)}) == pytest.approx(-1.0)
    assert math.isnan(cosine_at(origin, origin, ahead))  # a leg of length 0
    assert math.isnan(cosine_at(origin, {"other": np.ones(2)}, ahead))  # nothing shared


def fine_tuned_family(seed: int = 4) -> dict[str, dict[str, np.ndarray]]:
    """R's fine-tuned copies A and B (one drift, their own noise) and A's own copy A1."""
    rng = np.random.default_rng(seed)
    r = rng.normal(size=(40, 100))
    drift = rng.normal(scale=0.05, size=r.shape)

    def noise():
        return rng.normal(scale=0.03, size=r.shape)

    a = r + drift + noise()
    return {"R": {"fc.weight": r}, "A": {"fc.weight": a}, "B": {"fc.weight": r + drift + noise()},
            "A1": {"fc.weight": a + drift + noise()}}  # fmt: skip


def test_the_weight_path_tells_fine_tuned_siblings_from_a_grandchild():
    states = fine_tuned_family()
    assert cosine_at(states["A"], states["R"], states["A1"]) < -0.6  # A lies between R and A1
    assert cosine_at(states["B"], states["R"], states["A"]) > 0.1  # siblings: acute
    assert -0.4 < cosine_at(states["B"], states["R"], states["A1"]) < 0.1  # an uncle
    # behavioural distances where a sibling looks like an intermediate (as on the default run):
    # B is nearer A than R is, and R -> B -> A adds up to the direct distance
    distance = {("A", "R"): 0.10, ("B", "R"): 0.09, ("A", "B"): 0.02, ("A1", "R"): 0.12,
                ("A", "A1"): 0.03, ("A1", "B"): 0.04}  # fmt: skip
    pairs = synthetic_pairs(
        ["R", "A", "B", "A1"], ("R", "A", "B", "A1"),
        distance=lambda x, y: distance[tuple(sorted((x, y)))],
    )  # fmt: skip
    shapes = (("fc.weight", (40, 100)),)
    stats = {m: ModelStatistics(FULL, shapes, 0.0, k)
             for m, k in (("R", -2.0), ("A", -1.5), ("B", -1.5), ("A1", -1.0))}  # fmt: skip
    lineages = {"R": Lineage("R", "lenet", "digits", 10)}
    for child, parent in (("A", "R"), ("B", "R"), ("A1", "A")):
        lineages[child] = Lineage(child, "lenet", "digits", 10, parent=parent,
                                  derivation="finetune")  # fmt: skip
    with_weights = recover_lineage(
        pairs, METHODS, stats=stats, lineages=lineages, read_weights=states.__getitem__
    )
    parents = with_weights.families.set_index("model").parent
    assert dict(parents[["A", "B", "A1"]]) == {"A": "R", "B": "R", "A1": "A"}
    assert with_weights.score("parent_accuracy") == 1.0
    # by distance alone one sibling hangs under the other
    without = recover_lineage(pairs, METHODS, stats=stats, lineages=lineages)
    assert without.families.set_index("model").loc["A", "parent"] == "B"
    # the cue switched off: the same as without weights
    off = KinshipSettings.from_dict(
        {"direction": {"cues": ["task", "sparsity", "kurtosis", "mask"]}}
    )
    no_cue = recover_lineage(
        pairs, METHODS, stats=stats, lineages=lineages, settings=off,
        read_weights=states.__getitem__,
    )  # fmt: skip
    assert no_cue.families.set_index("model").loc["A", "parent"] == "B"


def test_the_weight_path_is_silent_where_the_weights_are_unrelated():
    states = fine_tuned_family()
    pairs = synthetic_pairs(
        ["R", "A", "B"], ("R", "A", "B"),
        distance=lambda x, y: {("A", "R"): 0.10, ("B", "R"): 0.09, ("A", "B"): 0.02}[
            tuple(sorted((x, y)))
        ],
    )  # fmt: skip
    # the weights method calls B's weights unrelated to R's: the angle is not read, and the
    # distances decide (B on the way from R to A)
    pairs.loc[(pairs.model_a == "B") & (pairs.model_b == "R"), "weights_p_value"] = 0.5
    shapes = (("fc.weight", (40, 100)),)
    stats = {m: ModelStatistics(FULL, shapes, 0.0, k)
             for m, k in (("R", -2.0), ("A", -1.5), ("B", -1.6))}  # fmt: skip
    result = recover_lineage(pairs, METHODS, stats=stats, read_weights=states.__getitem__)
    assert result.families.set_index("model").loc["A", "tree_parent"] == "B"


def test_kurtosis_is_silent_between_models_with_unrelated_weights():
    stats = {
        "P": ModelStatistics(FULL, SHAPES, 0.0, -2.0),
        "S": ModelStatistics(FULL, SHAPES, 0.0, 1.0),
    }
    settings = KinshipSettings.from_dict({}).direction
    assert "kurtosis" in cue_votes("P", "S", stats, {}, settings)
    assert "kurtosis" in cue_votes("P", "S", stats, {}, settings, shared_weights=True)
    assert cue_votes("P", "S", stats, {}, settings, shared_weights=False) == {}


def test_a_zero_distance_of_one_method_does_not_make_a_pair_identical():
    pairs = synthetic_pairs(["P", "Q", "Z"], ("P", "Q", "Z"), distance=lambda a, b: 0.1)
    pairs.loc[0, "zest_normalised"] = 0.0  # P, Q: the same predictions, different weights
    pairs.loc[1, ["zest_normalised", "weights_normalised"]] = 0.0  # P, Z: the same checkpoint
    graph = kinship_graph(pairs, METHODS, KinshipSettings())
    assert graph.weight.tolist() == pytest.approx([0.1, 0.0, 0.1])


def test_a_zero_distance_stands_for_the_methods_smallest_one():
    # zest resolves down to 0.02 in this table: its 0 for P, Q counts as 0.02, so the pair is
    # weighed over both methods as the others are (left out, it would weigh 0.1, the weights'
    # distance alone, and P, Q would look further apart than P, Z)
    zest = {("P", "Q"): 0.0, ("P", "Z"): 0.02, ("Q", "Z"): 0.5}
    pairs = synthetic_pairs(["P", "Q", "Z"], ("P", "Q", "Z"), distance=lambda a, b: 0.1)
    pairs["zest_normalised"] = [
        zest[(a, b)] for a, b in zip(pairs.model_a, pairs.model_b, strict=True)
    ]
    graph = kinship_graph(pairs, METHODS, KinshipSettings())
    expected = [math.sqrt(0.02 * 0.1), math.sqrt(0.02 * 0.1), math.sqrt(0.5 * 0.1)]
    assert graph.weight.tolist() == pytest.approx(expected)


def test_a_near_copy_of_the_root_is_not_between_it_and_a_student():
    # F is R's fine-tuned copy (0.005 from R); S is R's student, which a coarse method's noise
    # puts markedly nearer F (0.33) than R (0.40), as on the default run
    distance = {("F", "R"): 0.005, ("R", "S"): 0.40, ("F", "S"): 0.33}
    pairs = synthetic_pairs(
        ["R", "F", "S"], ("R", "F", "S"), distance=lambda a, b: distance[tuple(sorted((a, b)))]
    )
    stats = {
        m: ModelStatistics(FULL, SHAPES, 0.0, k) for m, k in (("R", -2.0), ("F", -1.9), ("S", 0.0))
    }
    lineages = {"R": Lineage("R", "lenet", "digits", 10)}
    for child, kind in (("F", "finetune"), ("S", "extract_probs")):
        lineages[child] = Lineage(child, "lenet", "digits", 10, parent="R", derivation=kind)
    result = recover_lineage(pairs, METHODS, stats=stats, lineages=lineages)
    assert result.families.set_index("model").loc["S", "parent"] == "R"
    assert result.score("parent_accuracy") == 1.0


def test_kurtosis_is_silent_where_the_weights_method_gave_no_verdict():
    # T is R's transfer to another data set, whose weights the weights method cannot judge (NaN);
    # T's kurtosis is lower than R's, so a kurtosis vote would call T the parent
    pairs = synthetic_pairs(["R", "T"], ("R", "T"), distance=lambda a, b: 0.3)
    pairs["weights_p_value"] = np.nan
    stats = {
        "R": ModelStatistics(FULL, SHAPES, 0.0, -1.0),
        "T": ModelStatistics(FULL, SHAPES, 0.0, -3.0),
    }
    result = recover_lineage(pairs, METHODS, stats=stats)
    edge = result.edges[result.edges.in_tree].iloc[0]
    assert not edge.directed and "kurtosis" not in edge.direction_evidence
    # without a weights method at all, kurtosis speaks wherever the shapes match
    alone = recover_lineage(pairs.drop(columns=["weights_p_value", "weights_normalised"]),
                            ["zest"], stats=stats)  # fmt: skip
    assert alone.families.set_index("model").loc["R", "parent"] == "T"


def test_unrelated_models_and_unjudged_pairs_get_no_edge():
    pairs = synthetic_pairs()
    pairs.loc[
        (pairs.model_a == "A") & (pairs.model_b == "R"), ["zest_p_value", "weights_p_value"]
    ] = np.nan
    result = recover_lineage(pairs, METHODS, stats=synthetic_stats(), lineages=synthetic_lineages())
    linked = {frozenset(p) for p in zip(result.edges.model_a, result.edges.model_b, strict=True)}
    assert frozenset(("A", "R")) not in linked and not any("X" in p for p in linked)


def test_p_value_combinations():
    assert combine_p_values([0.01, 0.5, float("nan")]) == pytest.approx(0.02)
    assert combine_p_values([0.6, 0.9]) == 1.0
    assert math.isnan(combine_p_values([float("nan")]))
    # Fisher: two p-values of 0.05 give chi2(4) tail at -2 log(0.0025)
    assert combine_p_values([0.05, 0.05], "fisher") == pytest.approx(0.0175, abs=1e-3)
    with pytest.raises(KinshipError, match="holm or fisher"):
        combine_p_values([0.1], "mean")


def test_fisher_trusts_dependent_methods_more_than_holm():
    # an unrelated pair that every method finds moderately close: Holm keeps it unrelated
    assert combine_p_values([0.02] * 4, "holm") > 0.01 > combine_p_values([0.02] * 4, "fisher")


def test_true_lineage_starts_a_family_at_a_retrained_model():
    lineages = {
        "R": Lineage("R", "lenet", "digits", 10),
        "T": Lineage("T", "lenet", "digits", 10, parent="R", derivation="retrain_without_class"),
        "F": Lineage("F", "lenet", "digits", 10, parent="T", derivation="finetune"),
        "G": Lineage("G", "lenet", "digits", 10, parent="F", derivation="prune"),
    }
    truth = true_lineage(lineages)
    assert truth["T"].parent is None and truth["T"].family == "T"
    assert truth["G"].family == "T" and truth["G"].generation == 2 and truth["G"].kind == "prune"


def test_weight_statistics():
    rng = np.random.default_rng(0)
    dense = {"w": rng.uniform(-1, 1, (200, 50)), "b": np.zeros(50)}
    zeros, kurt = weight_statistics(dense)
    assert zeros == 0.0 and kurt == pytest.approx(-1.2, abs=0.05)  # a uniform's excess kurtosis
    pruned = {"w": np.where(np.abs(dense["w"]) < 0.5, 0.0, dense["w"])}
    zeros, pruned_kurt = weight_statistics(pruned)
    assert zeros == pytest.approx(0.5, abs=0.02) and pruned_kurt > kurt


def test_settings_take_the_schema_defaults():
    settings = KinshipSettings.from_dict({}, alpha=0.05)
    assert settings.alpha == 0.05 and settings.combine == "holm"
    assert settings.direction.cues == ("task", "sparsity", "kurtosis", "mask", "weight_path")
    assert KinshipSettings.from_dict({"alpha": 0.001}, alpha=0.05).alpha == 0.001
    assert KinshipSettings.from_dict({}).alpha == 0.0001 == KinshipSettings().alpha
    with pytest.raises(KinshipError, match="unknown direction cues"):
        KinshipSettings.from_dict({"direction": {"cues": ["astrology"]}})


def test_plot_family_trees(tmp_path):
    result = recover_lineage(
        synthetic_pairs(), METHODS, stats=synthetic_stats(), lineages=synthetic_lineages()
    )
    result.edges.to_csv(tmp_path / "edges.csv", index=False)
    result.families.to_csv(tmp_path / "families.csv", index=False)
    png = plot_family_trees(tmp_path / "edges.csv", tmp_path / "families.csv", tmp_path / "t.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_lineage_plan_switches_and_errors():
    import copy

    import yaml

    from helpers import TINY_CONFIG
    from modelkin.catalog import ModelCatalog
    from modelkin.config import validate_config
    from modelkin.kinship.plan import lineage_plan

    config = validate_config(yaml.safe_load(TINY_CONFIG.read_text()))
    catalog = ModelCatalog(config)
    plan = lineage_plan(config, catalog)
    assert plan is not None and plan.methods == ("zest", "gradfield", "weights", "outputs")
    # lineage.alpha's default, not the verdicts' 0.01: one false edge merges two families
    assert plan.alpha == 0.0001 and plan.outputs("r")["scores"] == "r/lineage/scores.csv"
    off = copy.deepcopy(config)
    off["lineage"]["enabled"] = False
    assert lineage_plan(off, catalog) is None
    bad = copy.deepcopy(config)
    bad["lineage"]["methods"] = ["penultimate_cka"]
    with pytest.raises(KinshipError, match="not in distances.methods"):
        lineage_plan(bad, catalog)
    empty = copy.deepcopy(config)
    empty["derived"]["derivations"] = {}
    assert lineage_plan(empty, ModelCatalog(empty)) is None
    empty["lineage"]["enabled"] = True
    with pytest.raises(KinshipError, match="no derived models"):
        lineage_plan(empty, ModelCatalog(empty))
